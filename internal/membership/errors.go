package membership

import "errors"

// Sentinel errors of the membership package. Methods return errors that wrap
// these (check with errors.Is); serf's and memberlist's own errors are
// wrapped underneath for the detail, never returned bare.
var (
	// ErrInvalidConfig is wrapped by every Config.Validate error; the text
	// names the field and its value.
	ErrInvalidConfig = errors.New("membership: invalid config")
	// ErrTagsTooLarge means the tags, as serf encodes them into memberlist's
	// node metadata, exceed MaxTagsSize (512) bytes. Gossip the routing
	// table's epoch, not the table.
	ErrTagsTooLarge = errors.New("membership: tags too large")
	// ErrTooLarge means a user event, query or query response is over
	// serf's size limit (MaxUserEventSize, MaxQuerySize).
	ErrTooLarge = errors.New("membership: message too large")
	// ErrJoinFailed means Join reached none of the given seeds. Wrong
	// address, a different ClusterName (gossip label) and a different
	// SecretKey all look the same from the joining side: the seed hangs up.
	ErrJoinFailed = errors.New("membership: join failed")
	// ErrLeft means the member has left the cluster (Leave); it can no
	// longer join, send events or query. Shut it down and start a new one.
	ErrLeft = errors.New("membership: member has left the cluster")
	// ErrShutdown means the Membership has been shut down, by Shutdown or
	// by serf itself (it shuts down the loser of a node-name conflict).
	ErrShutdown = errors.New("membership: shut down")
	// ErrReservedName means a user event or query name starts with serf's
	// reserved prefix "_serf_".
	ErrReservedName = errors.New("membership: name uses serf's reserved prefix _serf_")
	// ErrNotQuery means Respond was called on an event that is not a query.
	ErrNotQuery = errors.New("membership: event is not a query")
	// ErrBadFilter means a QueryOptions.Tags value is not a valid regular
	// expression.
	ErrBadFilter = errors.New("membership: bad query tag filter")
)
