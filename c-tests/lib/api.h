/* One socket API as a table of functions, so a scenario is written once and run
 * twice: against the kernel's own calls and against xsocket's xs_ calls. */
#ifndef XS_TEST_API_H
#define XS_TEST_API_H

#include <sys/types.h>
#include <sys/socket.h>
#include <poll.h>

struct api {
    const char *name;
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int s, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int s, int backlog);
    int (*accept)(int s, struct sockaddr *addr, socklen_t *len);
    int (*accept4)(int s, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int s, const struct sockaddr *addr, socklen_t len);
    ssize_t (*send)(int s, const void *buf, size_t len, int flags);
    ssize_t (*recv)(int s, void *buf, size_t len, int flags);
    ssize_t (*sendto)(int s, const void *buf, size_t len, int flags,
                      const struct sockaddr *to, socklen_t tolen);
    ssize_t (*recvfrom)(int s, void *buf, size_t len, int flags,
                        struct sockaddr *from, socklen_t *fromlen);
    ssize_t (*sendmsg)(int s, const struct msghdr *msg, int flags);
    ssize_t (*recvmsg)(int s, struct msghdr *msg, int flags);
    int (*shutdown)(int s, int how);
    int (*close)(int s);
    int (*setsockopt)(int s, int level, int name, const void *val, socklen_t len);
    int (*getsockopt)(int s, int level, int name, void *val, socklen_t *len);
    int (*getsockname)(int s, struct sockaddr *addr, socklen_t *len);
    int (*getpeername)(int s, struct sockaddr *addr, socklen_t *len);
    int (*fcntl)(int s, int cmd, int arg);
    int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
};

/* The kernel's calls (sends add MSG_NOSIGNAL, as xsocket always does). */
extern const struct api KERNEL;
/* xsocket's calls. */
extern const struct api XS;

#endif
