/*
 * chan.h - the task channel: a unix socket the running agent serves for
 * the scripts it starts, so they reach keruta-api without its token.
 *
 * The agent listens on <work>/.keruta/agent.sock (0600, owned by the
 * run_as user when there is one; a private directory under /tmp when
 * that path is too long for a socket) and hands the path to every child
 * as KERUTA_AGENT_SOCKET.  `keruta-agent log LEVEL MESSAGE`,
 * `progress PERCENT [MESSAGE]` and `artifact FILE` connect to it.
 *
 * Protocol: one request per connection, a JSON object
 *   {"cmd":"log","level":"INFO","message":"..."}
 *   {"cmd":"progress","percent":"40","message":"..."}
 *   {"cmd":"artifact","name":"report.txt"}   + the open file (SCM_RIGHTS)
 * then the client shuts down its side; the agent answers one line, "ok"
 * or "error: WHY".  The artifact travels as a descriptor the script
 * opened itself, so the agent never reads a file the script could not.
 *
 * Requests are served from the thread that runs the child (the process
 * runner polls the socket with the child's output), so they never race
 * the agent's own use of the backend.
 */
#ifndef KR_CHAN_H
#define KR_CHAN_H

#include <sys/types.h>

struct kr_agent;

typedef struct kr_chan kr_chan;

/* Listen for the task; NULL (and a WARN) when it cannot. */
kr_chan *kr_chan_open(struct kr_agent *a, const char *work_dir);
void kr_chan_close(kr_chan *c);
int kr_chan_fd(const kr_chan *c);
const char *kr_chan_path(const kr_chan *c);
/* Let uid:gid connect (the run_as user). */
void kr_chan_allow(kr_chan *c, uid_t uid, gid_t gid);
/* Accept and answer the requests waiting now; never blocks long. */
void kr_chan_serve(kr_chan *c);

/* The client side: the `log`, `progress` and `artifact` commands.
 * Returns the process exit code. */
int kr_chan_client(const char *cmd, int argc, char **argv);

#endif
