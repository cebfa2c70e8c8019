#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

/* Field codes of PQresultErrorField, which are character-literal macros Swift does not import. */
static const int CLIBPQ_DIAG_SQLSTATE = PG_DIAG_SQLSTATE;
static const int CLIBPQ_DIAG_MESSAGE_PRIMARY = PG_DIAG_MESSAGE_PRIMARY;
static const int CLIBPQ_DIAG_MESSAGE_DETAIL = PG_DIAG_MESSAGE_DETAIL;
static const int CLIBPQ_DIAG_CONSTRAINT_NAME = PG_DIAG_CONSTRAINT_NAME;

/* True when an idle connection can no longer be used: bad status, or the server closed it
   (restart, idle timeout, administrator command). Never blocks: zero-timeout poll, libpq's own
   non-blocking read, then a peek for end of file. */
static inline int clibpq_idle_connection_broken(PGconn *c) {
    if (PQstatus(c) != CONNECTION_OK) return 1;
    int fd = PQsocket(c);
    if (fd < 0) return 1;
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 1;
    if (!PQconsumeInput(c)) return 1;
    if (PQstatus(c) != CONNECTION_OK) return 1;
    char ch;
    if (recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return 1;
    return 0;
}
#endif
