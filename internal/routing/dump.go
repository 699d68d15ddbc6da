package routing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// DumpDigestBits is the dgst_bits that MarshalRoutingDump reports: sonae's
// key digest is the 64-bit xxhash64 of the key.
const DumpDigestBits = 64

// dumpHeader is the first element of a routing dump. dgst_bits, div_bits
// and rn are ROMA's; the other fields are sonae's additions, which a ROMA
// reader ignores.
type dumpHeader struct {
	DgstBits          uint              `json:"dgst_bits"`
	DivBits           uint              `json:"div_bits"`
	RN                int               `json:"rn"`
	Hash              string            `json:"hash,omitempty"`
	Version           uint64            `json:"version"`
	ReplicationInHost bool              `json:"replication_in_host"`
	Hosts             map[string]string `json:"hosts,omitempty"`
	VClk              map[string]uint64 `json:"v_clk,omitempty"`
}

// dumpVnodeID returns the ROMA-style id of vnode v: the vnode's first digest,
// v << (dgst_bits - div_bits). With dgst_bits 64 it is Vnode's input masked
// to its top div_bits bits, which is how ROMA clients look a key up
// (digest & search_mask).
func dumpVnodeID(v int, divBits uint) uint64 { return uint64(v) << (DumpDigestBits - divBits) }

// MarshalRoutingDump returns the table in the shape of ROMA's
// `routingdump json`, a three-element array:
//
//	[ {"dgst_bits":64, "div_bits":9, "rn":2, ...sonae fields},
//	  ["10.0.0.1_11211", "10.0.0.2_11211"],
//	  {"0": ["10.0.0.1_11211", "10.0.0.2_11211"], "36028797018963968": [...], ...} ]
//
// As in ROMA, the third element (v_idx) maps each vnode id, given as a
// decimal string, to its replica list, primary first. A vnode id is
// ROMA-style: the first digest of the vnode, vnode << (dgst_bits -
// div_bits), so a client computes digest & ^(2^(dgst_bits-div_bits)-1) and
// looks that up. sonae's digest is xxhash64 of the key (dgst_bits 64), not
// ROMA's SHA-1, so the ids are multiples of 2^55 with 512 vnodes. The
// vnodes are written in vnode order; a vnode without replicas maps to [].
//
// The header adds, beyond ROMA's dgst_bits, div_bits and rn: "hash"
// ("xxhash64"), "version", "replication_in_host", "hosts" (node id -> host,
// only for the nodes whose host is not the id's address part) and "v_clk"
// (vnode id -> epoch, only the non-zero ones; ROMA keeps its per-vnode
// clocks under that name). UnmarshalRoutingDump reads it all back.
func (t *Table) MarshalRoutingDump() ([]byte, error) {
	h := dumpHeader{
		DgstBits: DumpDigestBits, DivBits: t.DivBits, RN: t.Redundancy, Hash: "xxhash64",
		Version: t.Version, ReplicationInHost: t.ReplicationInHost,
	}
	for _, n := range t.Nodes {
		if n.Host != n.ID.Host() {
			if h.Hosts == nil {
				h.Hosts = map[string]string{}
			}
			h.Hosts[string(n.ID)] = n.Host
		}
	}
	for v, r := range t.Vnodes {
		if r.Epoch != 0 {
			if h.VClk == nil {
				h.VClk = map[string]uint64{}
			}
			h.VClk[strconv.FormatUint(dumpVnodeID(v, t.DivBits), 10)] = r.Epoch
		}
	}
	var b bytes.Buffer
	b.WriteByte('[')
	hb, err := json.Marshal(h) // map keys come out sorted: deterministic
	if err != nil {
		return nil, err
	}
	b.Write(hb)
	b.WriteByte(',')
	nb, err := json.Marshal(t.NodeIDs())
	if err != nil {
		return nil, err
	}
	b.Write(nb)
	b.WriteString(",{")
	for v, r := range t.Vnodes {
		if v > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", strconv.FormatUint(dumpVnodeID(v, t.DivBits), 10))
		ids := r.Nodes
		if ids == nil {
			ids = []NodeID{}
		}
		rb, err := json.Marshal(ids)
		if err != nil {
			return nil, err
		}
		b.Write(rb)
	}
	b.WriteString("}]")
	return b.Bytes(), nil
}

// UnmarshalRoutingDump parses MarshalRoutingDump's output, or a ROMA
// routingdump json (then hosts come from the node ids, epochs are 0 and the
// vnode ids are mapped down by dgst_bits - div_bits), and validates the
// result.
func UnmarshalRoutingDump(b []byte) (*Table, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return nil, fmt.Errorf("%w: routing dump: %v", ErrInvalidTable, err)
	}
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: routing dump has %d elements, want 3", ErrInvalidTable, len(parts))
	}
	var h dumpHeader
	var ids []NodeID
	var vidx map[string][]NodeID
	for i, dst := range []any{&h, &ids, &vidx} {
		if err := json.Unmarshal(parts[i], dst); err != nil {
			return nil, fmt.Errorf("%w: routing dump element %d: %v", ErrInvalidTable, i, err)
		}
	}
	if err := ValidateDivBits(int(h.DivBits)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTable, err)
	}
	if h.DgstBits < h.DivBits || h.DgstBits > 64 {
		return nil, fmt.Errorf("%w: dgst_bits %d with div_bits %d", ErrInvalidTable, h.DgstBits, h.DivBits)
	}
	t, err := NewTable(h.DivBits, h.RN, h.ReplicationInHost)
	if err != nil {
		return nil, err
	}
	t.Version = h.Version
	for _, id := range ids {
		n := NodeFromID(id)
		if host, ok := h.Hosts[string(id)]; ok {
			n.Host = host
		}
		t.Nodes = append(t.Nodes, n)
	}
	sortNodes(t.Nodes)
	shift := h.DgstBits - h.DivBits
	for key, nodes := range vidx {
		v, err := dumpVnode(key, shift, len(t.Vnodes))
		if err != nil {
			return nil, err
		}
		if len(nodes) > 0 {
			t.Vnodes[v].Nodes = nodes
		}
	}
	for key, e := range h.VClk {
		v, err := dumpVnode(key, shift, len(t.Vnodes))
		if err != nil {
			return nil, err
		}
		t.Vnodes[v].Epoch = e
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// dumpVnode maps a routing dump vnode id back to a vnode number.
func dumpVnode(key string, shift uint, count int) (int, error) {
	id, err := strconv.ParseUint(key, 10, 64)
	// A non-canonical key ("007") could name a vnode twice.
	if err != nil || strconv.FormatUint(id, 10) != key || id&(1<<shift-1) != 0 || id>>shift >= uint64(count) {
		return 0, fmt.Errorf("%w: routing dump vnode id %q", ErrBadVnode, key)
	}
	return int(id >> shift), nil
}
