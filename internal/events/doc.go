// Package events runs Serf-compatible event handler scripts and writes the
// live-node-list file, so that operators who drove a serf cluster with
// `serf agent -event-handler` scripts (load-balancer updates, DNS, paging)
// keep those scripts unchanged under sonae, and outside tools can read who
// is alive without speaking gossip.
//
// It is a leaf: it knows nothing of serf or of internal/membership. The
// caller converts gossip events into Event values and hands them to
// Runner.Dispatch; the caller also owns the decision of when to call
// WriteLiveNodes.
//
// # Why a queue and one worker
//
// serf's agent runs handlers serially on its event loop, and its 64-event
// channel blocks serf's own state updates once a handler hangs. sonae's
// gossip layer must never wait on a script, so Dispatch only appends to a
// bounded queue (Config.QueueSize) and returns; one worker goroutine runs
// the events in arrival order and, for each, the matching handlers in the
// order configured, like serf. A slow handler delays the events behind it
// and nothing else. When the queue is full the oldest waiting event is
// dropped (counted in Stats.Dropped, logged): the newest events describe
// the current state, and a script that cares can reconcile from the
// live-node list.
//
// # Why a timeout and process groups
//
// serf waits for a handler forever. Here every run gets Config.Timeout;
// each handler runs as `Shell -c CMD` in its own process group, and at the
// timeout (or at Close) the whole group is killed with SIGKILL, so a
// `sleep` or `curl` the script started dies with it instead of holding the
// output pipe open. A handler that exits 0 but leaves a background process
// holding its stdout (serf's docs ask handlers that fork to redirect their
// output) is given one more second, then its pipes are closed; the run
// counts as a success and a warning says to redirect.
//
// # The contract handlers see (serf's)
//
// Environment: the parent's, plus SERF_EVENT, SERF_SELF_NAME,
// SERF_SELF_ROLE (tag "role"), SERF_TAG_<NAME> for each local tag (upper
// case, runes outside [A-Z0-9_] replaced by '_'), SERF_USER_EVENT and
// SERF_USER_LTIME for user events, SERF_QUERY_NAME and SERF_QUERY_LTIME for
// queries. Event-describing SERF_ variables inherited from the parent are
// removed first, so a member event never shows a stale SERF_USER_EVENT.
//
// stdin: for member events one line per member, "name\taddr\trole\ttags\n",
// tags as k=v joined by ',' in key order, tabs and newlines in the name,
// role and tags written as `\t` and `\n`; for user events and queries the
// payload, with a newline appended when it lacks one (serf does this so
// that `read` works).
//
// A query is answered with the handler's combined stdout and stderr (the
// first Config.MaxOutput bytes) when it exits 0 with some output; only the
// first such handler answers. Output of other runs is logged at debug, and
// failures at warn with the exit status and the first lines of output.
package events
