package server

import "github.com/sonae-kv/sonae/internal/kv"

// dataPath is what a connection runs data commands on: the cluster's data
// path (routing, forwarding, replication), or a bare store in unit tests
// that build a Server without a cluster. Both have kv.Store's signatures.
type dataPath interface {
	Get(ns string, key []byte) (kv.Item, bool, error)
	Store(req kv.StoreRequest) (kv.Result, error)
	StoreCAS(req kv.StoreRequest) (kv.Result, uint64, error)
	Delete(ns string, key []byte) (bool, error)
	Drop(ns string, key []byte) error
	DeleteCAS(ns string, key []byte, cas uint64) (kv.Result, error)
	GetAndTouch(ns string, key []byte, exptime int64) (kv.Item, int64, bool, error)
	Touch(ns string, key []byte, exptime int64) (kv.Item, bool, error)
	Arith(ns string, key []byte, delta uint64, incr bool) (uint64, kv.Result, error)
	MetaArith(ns string, key []byte, req kv.ArithRequest) (kv.ArithResult, kv.Result, error)
}

var _ dataPath = (*kv.Store)(nil)

// setData picks the data path for the connection's current options.
func (c *conn) setData() {
	if c.srv.cl == nil {
		c.data = c.srv.store
		return
	}
	c.data = c.srv.cl.rep.View(c.direct, c.readSecondary)
}

// multiGetter is a data path that reads many keys in one go, grouped by
// the node that serves them.
type multiGetter interface {
	GetMulti(nss []string, keys [][]byte) ([]kv.Item, []bool, []error)
}

type multiGetResult struct {
	items []kv.Item
	found []bool
	errs  []error
}

// prefetch reads every key of a multi-get at once.
func (c *conn) prefetch(mg multiGetter, toks [][]byte) multiGetResult {
	nss := make([]string, len(toks))
	keys := make([][]byte, len(toks))
	for i, k := range toks {
		nss[i], keys[i], _ = c.splitKey(k)
	}
	items, found, errs := mg.GetMulti(nss, keys)
	return multiGetResult{items, found, errs}
}
