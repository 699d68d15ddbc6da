package consensus

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Sentinel errors of the consensus package. Node methods return errors that
// wrap these (check with errors.Is); they never return raft's own sentinels.
var (
	// ErrKeyNotFound is what BoltStore.Get and GetUint64 return for a
	// missing key. Its text is exactly "not found", without the package
	// prefix the other sentinels carry, because raft recognises a missing
	// key by comparing err.Error() with that string.
	ErrKeyNotFound = errors.New("not found")
	// ErrStoreLocked means another BoltStore (another process, or another
	// Node in this one) holds the raft.db file: a node must not be started
	// twice on one data directory.
	ErrStoreLocked = errors.New("consensus: raft store is locked by another process")
	// ErrCorrupt means a stored log entry or stable value could not be
	// decoded.
	ErrCorrupt = errors.New("consensus: corrupt raft store entry")
	// ErrClosed means the BoltStore has been closed.
	ErrClosed = errors.New("consensus: raft store closed")
	// ErrNotLeader means the operation must run on the leader and this node
	// is not it. The error text names the leader when one is known.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrLeadershipLost means this node lost leadership before the command
	// was committed. The command may or may not have been committed.
	ErrLeadershipLost = errors.New("consensus: leadership lost while committing")
	// ErrShutdown means the Node has been shut down (or was shut down while
	// the operation waited: its outcome is then unknown).
	ErrShutdown = errors.New("consensus: node is shut down")
	// ErrTimeout means raft could not even accept the operation before the
	// context's deadline; nothing was proposed.
	ErrTimeout = errors.New("consensus: timed out enqueuing operation")
	// ErrAlreadyBootstrapped means Bootstrap was called on a node that
	// already has raft state (a restart, or a node that joined a cluster).
	// It is safe to ignore on restart.
	ErrAlreadyBootstrapped = errors.New("consensus: raft state already exists, not bootstrapping")
	// ErrNotVoter means the operation needs a voter (Config.Voter, or a
	// voter in the cluster configuration).
	ErrNotVoter = errors.New("consensus: not a voter")
	// ErrNothingToSnapshot means Snapshot found nothing new since the last
	// snapshot.
	ErrNothingToSnapshot = errors.New("consensus: nothing new to snapshot")
	// ErrBusy means the leader refused the operation because a leadership
	// transfer is in progress; retry.
	ErrBusy = errors.New("consensus: leader busy, retry")
)

// translate maps an error from raft to the package's sentinels. It
// returns nil for nil and leaves other errors (I/O, bootstrap
// configuration) as they are.
func (n *Node) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		addr, id := n.raft.LeaderWithID()
		if id == "" {
			return fmt.Errorf("%w (leader unknown)", ErrNotLeader)
		}
		return fmt.Errorf("%w (leader is %s at %s)", ErrNotLeader, id, addr)
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w (a snapshot was restored meanwhile)", ErrLeadershipLost)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrTimeout
	case errors.Is(err, raft.ErrCantBootstrap):
		return ErrAlreadyBootstrapped
	case errors.Is(err, raft.ErrNotVoter):
		return ErrNotVoter
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		return ErrNothingToSnapshot
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w (leadership transfer in progress)", ErrBusy)
	}
	return err
}
