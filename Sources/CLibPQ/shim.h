#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

/* Field codes of PQresultErrorField, which are character-literal macros Swift does not import. */
static const int CLIBPQ_DIAG_SQLSTATE = PG_DIAG_SQLSTATE;
static const int CLIBPQ_DIAG_MESSAGE_PRIMARY = PG_DIAG_MESSAGE_PRIMARY;
static const int CLIBPQ_DIAG_MESSAGE_DETAIL = PG_DIAG_MESSAGE_DETAIL;
static const int CLIBPQ_DIAG_CONSTRAINT_NAME = PG_DIAG_CONSTRAINT_NAME;

/* The notice receiver of every connection: sets *flag when the server warns that it stopped
   waiting for a synchronous standby (a cancel request during COMMIT: pg_cancel_backend, or a
   client's; statement_timeout is off by then; routine SyncRepWaitForLSN, which names it in every
   language). The transaction is then committed on the primary only, and no standby has confirmed
   it: the caller must not report it as durable. */
static void clibpq_notice_receiver(void *flag, const PGresult *result) {
    const char *routine = PQresultErrorField(result, PG_DIAG_SOURCE_FUNCTION);
    const char *severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (flag && routine && severity && strcmp(routine, "SyncRepWaitForLSN") == 0 && strcmp(severity, "WARNING") == 0) {
        *(int *)flag = 1;
    }
}
static inline void clibpq_watch_notices(PGconn *c, int *flag) {
    PQsetNoticeReceiver(c, clibpq_notice_receiver, flag);
}

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
/* Waits up to `milliseconds` for the connection's socket to become readable: 1 readable, 0 not
   within the time, -1 closed or broken. For a connection that only listens for notices. */
static inline int clibpq_wait_readable(PGconn *c, int milliseconds) {
    int fd = PQsocket(c);
    if (fd < 0) return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int n = poll(&p, 1, milliseconds);
    if (n < 0) return 0;
    if (n == 0) return 0;
    if (p.revents & (POLLERR | POLLNVAL)) return -1;
    return 1;
}
#endif
