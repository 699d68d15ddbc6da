// Package histcheck records the operations concurrent clients send to a
// memcached-protocol key-value store and checks the history: for
// linearizability against a porcupine model of one key (Check), and for
// acknowledged writes missing from the final state (CheckLost). It owns the
// history format (Input, Output, Op), the Recorder, the model and both
// checks; it knows nothing of sonae's server or client. Only tests import it.
//
// # Recording
//
// A client goroutine wraps every request:
//
//	rec := histcheck.NewRecorder()
//	...
//	op := rec.Begin(client, histcheck.Set(key, value))
//	err := mc.Set(&memcache.Item{Key: key, Value: []byte(value)})
//	if err != nil {
//		rec.End(op, histcheck.Unknown(err)) // timeout, connection error, SERVER_ERROR
//	} else {
//		rec.End(op, histcheck.Stored())
//	}
//	...
//	histcheck.Check(t, rec, time.Minute)
//	histcheck.CheckLost(t, rec, finalReads) // after healing every fault
//
// Times come from the monotonic clock, read in Begin and End, so Begin must
// come before the request is written and End after the reply is read.
//
// # Unknown outcomes
//
// A definite reply (STORED, EXISTS, NOT_FOUND, DELETED, a get's value or
// miss) says what happened. A timeout, a connection error or a
// SERVER_ERROR does not: the write may have been applied, may be applied
// later (still queued or being replicated), or never. Such an operation is
// recorded with Unknown, and the model accepts it in every state. For
// porcupine it returns after every other event of the history, so the
// checker may place it at any point after its call; placing it after
// everything else is the same as its never having happened. Two rules keep
// the search small when a failover leaves hundreds of them (every one
// pending at the end multiplies the states to try):
//
//   - A set or cas whose value a definite operation observed (a get found
//     it, or a cas expected it and stored) must precede that observer, as
//     values are unique; it returns when its first observer returns.
//   - The check first runs without the unknown writes nobody observed. A
//     linearization of that history is one of the whole history with those
//     writes at the end, so Ok is final. Otherwise the whole history is
//     checked: an unread write can still explain an EXISTS or a presence.
//
// Reads with an unknown outcome constrain nothing and are dropped. An
// operation that was begun but never ended counts as unknown.
//
// # Unique values and cas
//
// Every set or cas must write a value never written to that key before (the
// tests write "c<client>-<seq>"); the checks reject a history that breaks
// this. Real memcached cas takes the cas id returned by gets, not a value.
// The client does gets, remembers the value V and its cas id, and sends cas
// with that id; it records Cas(key, V, W). Because each value is written
// once, "the item still has the cas id of V" is the same as "the key still
// holds V" (the cas id names the write of V, and only that write stored V).
// So the model, whose state is just the key's value, decides cas by value:
// STORED (and the key holds W) if the key holds V, EXISTS if it holds
// another value, NOT_FOUND if it is missing.
//
// Items must not expire or be evicted during a run: the model does not know
// about either, so both look like anomalies.
//
// # Lost writes
//
// Linearizability is more than asynchronous replication promises across a
// failover. Lost checks the weaker promise that no acknowledged write is
// lost, given one final read of every key after the run. For each key, the
// writes that may have produced the final value are found (thanks to unique
// values, the one set or cas that wrote it; for a missing key, the deletes
// and the initial state). An acknowledged write called after all of them had
// returned is lost: it took effect after the final value was written and no
// recorded write can have replaced it. A write with an unknown outcome may
// land at any time, so it never counts as returned. See Lost for the exact
// rule.
//
// # Failures
//
// A history that is not linearizable fails the test, lists the operations
// of the violating keys and writes porcupine's HTML visualization to
// $SONAE_HISTCHECK_DIR, or to t.TempDir() (removed when the test ends). A
// search that hits its timeout fails too, unless Options.AllowUnknown is
// set: an unfinished search establishes nothing.
package histcheck
