// The header used from C++: compiled with g++ -std=c++11 -pedantic -Werror and run.
// A TCP echo through the URL convenience, with the sids owned by a small RAII type.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "xsocket.h"

namespace {

// Closes the sid when it goes out of scope.
class Sid {
  public:
    explicit Sid(int sid) : sid_(sid) {}
    ~Sid() {
        if (sid_ >= 0) xs_close(sid_);
    }
    Sid(const Sid &) = delete;
    Sid &operator=(const Sid &) = delete;
    int get() const { return sid_; }

  private:
    int sid_;
};

int fail(const char *what) {
    std::fprintf(stderr, "cxx_echo: %s failed: %s\n", what, xs_last_error());
    return 1;
}

}  // namespace

int main() {
    Sid listener(xs_listen_url("tcp://127.0.0.1:0", 4));
    if (listener.get() < 0) return fail("xs_listen_url");
    sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (xs_getsockname(listener.get(), reinterpret_cast<sockaddr *>(&addr), &len) != 0)
        return fail("xs_getsockname");
    std::string url = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    Sid client(xs_dial(url.c_str()));
    if (client.get() < 0) return fail("xs_dial");
    Sid server(xs_accept(listener.get(), nullptr, nullptr));
    if (server.get() < 0) return fail("xs_accept");

    const std::string message = "hello from C++";
    if (xs_send(client.get(), message.data(), message.size(), 0) != ssize_t(message.size()))
        return fail("xs_send");
    char buf[64] = {};
    ssize_t n = xs_recv(server.get(), buf, sizeof buf, 0);
    if (n != ssize_t(message.size()) || message != std::string(buf, size_t(n)))
        return fail("xs_recv");
    if (xs_send(-1, buf, 1, 0) != -1 || errno != EBADF) return fail("EBADF check");
    std::printf("cxx_echo: echoed '%s' through xsocket from C++\n", buf);
    std::printf("1 passed, 0 failed\n");
    return 0;
}
