package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sentinel errors of the config package.
var (
	// ErrInvalid wraps every validation failure; the message names the key.
	ErrInvalid = errors.New("config: invalid value")
)

// Engine names.
const (
	EnginePebble = "pebble"
	EngineMemory = "memory"
)

// Durability names.
const (
	// DurabilityInterval hands every write to the OS before acknowledging it
	// (so kill -9 loses nothing) and fsyncs every SyncInterval.
	DurabilityInterval = "interval"
	// DurabilityFsync fsyncs every write before acknowledging it.
	DurabilityFsync = "fsync"
)

// Duration is a time.Duration that reads and writes YAML as "150ms", "10s".
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (examples: 50ms, 10s, 5m)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is everything sonaed needs to start. Every field has a YAML key of the
// same name in snake_case; the flags of sonaed use the same names with dashes.
type Config struct {
	// Addr is the host the client port binds to and the host part of the node
	// id. Default 127.0.0.1.
	Addr string `yaml:"addr"`
	// Port is the client TCP port (memcached protocol and admin commands).
	// Default 11211.
	Port int `yaml:"port"`
	// Data is the data directory. Default ./sonae-data.
	Data string `yaml:"data"`
	// Engine is pebble (persistent, default) or memory.
	Engine string `yaml:"engine"`
	// Name is the cluster name, returned by whoami. Default sonae.
	Name string `yaml:"name"`

	// DivBits fixes the vnode count at 2^DivBits. Default 9 (512 vnodes).
	// Like Redundancy it is fixed when the cluster is created; a joining
	// node takes the cluster's value.
	DivBits int `yaml:"div_bits"`

	// Advertise is the host other nodes and clients reach this node at, and
	// the host part of its id. Default: Addr (required when Addr is 0.0.0.0
	// or ::).
	Advertise string `yaml:"advertise"`
	// Join is the HOST_PORT (or host:port) of any member of the cluster to
	// join. Empty bootstraps a new cluster, or restarts the one recorded in
	// the data directory.
	Join string `yaml:"join"`
	// Redundancy is how many replicas each vnode has (primary included).
	// Default 2.
	Redundancy int `yaml:"redundancy"`
	// ReplicationInHost lets two replicas of a vnode sit on the same host
	// (ROMA's --replication_in_host). Default false.
	ReplicationInHost bool `yaml:"replication_in_host"`
	// MaxVoters is how many nodes vote in Raft; the others follow the log
	// without voting. 1..5, default 3.
	MaxVoters int `yaml:"max_voters"`
	// GossipKey encrypts gossip: base64 of 16, 24 or 32 bytes. Every member
	// needs the same key. Empty sends gossip in clear.
	GossipKey string `yaml:"gossip_key"`
	// GossipProfile tunes failure detection: local (fast, for one machine),
	// lan (default) or wan.
	GossipProfile string `yaml:"gossip_profile"`
	// ReplicationTimeout is how long a primary waits for a secondary's ack
	// before it removes the secondary from the in-sync set (through Raft)
	// and acknowledges without it. Default 2s.
	ReplicationTimeout Duration `yaml:"replication_timeout"`
	// ReadLease is how long a primary keeps serving reads after its last
	// contact with the Raft leader. The controller never promotes a new
	// primary sooner than this after the old one lost contact. Default 1s.
	ReadLease Duration `yaml:"read_lease"`
	// Role is this member's "role" gossip tag, which event handlers see as
	// SERF_SELF_ROLE (serf agent's -role). Empty sets no role tag.
	Role string `yaml:"role"`
	// EventHandlers run on gossip events with serf's handler contract
	// (internal/events): "[FILTER=]CMD", FILTER such as
	// member-join,member-failed, user:deploy or query:load. Repeatable.
	EventHandlers []string `yaml:"event_handler"`
	// EventHandlerTimeout bounds one handler run; its process group is
	// killed then. Default 30s.
	EventHandlerTimeout Duration `yaml:"event_handler_timeout"`
	// LiveNodesFile, when set, is rewritten atomically (JSON) on every
	// membership change with the live members (Droonga's live node list).
	LiveNodesFile string `yaml:"live_nodes_file"`

	// MaxItemSize is the largest value accepted, in bytes. Default 1 MiB.
	MaxItemSize int `yaml:"max_item_size"`
	// MaxConnections bounds concurrent client connections; more are answered
	// with an error and closed. Default 4096.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a client connection that sends nothing for this
	// long, including in the middle of a command. 0 disables. Default 10m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxLineLength bounds a command line, in bytes. A longer line is
	// answered with an error and the connection is closed. Default 64 KiB.
	MaxLineLength int `yaml:"max_line_length"`
	// MaxPendingValueBytes bounds the memory held by value bodies that are
	// being received on all connections together. A connection that would
	// exceed it waits. Default 256 MiB.
	MaxPendingValueBytes int64 `yaml:"max_pending_value_bytes"`

	// AuthToken, when set, lets a non-loopback client run state-changing
	// admin commands after `auth TOKEN`. Loopback clients never need it.
	AuthToken string `yaml:"auth_token"`

	// Durability is interval (default) or fsync; see the constants.
	Durability string `yaml:"durability"`
	// SyncInterval is the fsync period of the interval policy: the most a
	// machine crash can lose. Default 50ms.
	SyncInterval Duration `yaml:"sync_interval"`
	// CacheSize is the pebble block cache, in bytes. Default 128 MiB.
	CacheSize int64 `yaml:"cache_size"`
	// RowCacheSize is the pebble engine's cache of whole records, which
	// serves repeated reads without touching pebble, in bytes. 0 disables
	// it. Default 64 MiB.
	RowCacheSize int64 `yaml:"row_cache_size"`

	// ChangeLogRetainEntries is how many change-log entries each vnode keeps
	// at least, for replicas to catch up from. Default 10000.
	ChangeLogRetainEntries int `yaml:"changelog_retain_entries"`
	// ChangeLogRetainAge drops entries older than this, beyond the retained
	// count. Default 1h.
	ChangeLogRetainAge Duration `yaml:"changelog_retain_age"`
	// ExpiryScanInterval is how often expired items are reclaimed. Default 1s.
	ExpiryScanInterval Duration `yaml:"expiry_scan_interval"`

	// Threads is how many goroutines may run Go code at once (GOMAXPROCS),
	// like memcached's -t. 0 keeps the Go runtime's choice: the CPUs the
	// process may use, container limits included. Measured on 2 cores, 2, 4
	// and 8 made no difference beyond noise (docs/design.md).
	Threads int `yaml:"threads"`

	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`

	configPath string
}

// Default returns the embedded defaults: a single node that runs with no
// configuration at all.
func Default() Config {
	return Config{
		Addr:                   "127.0.0.1",
		Port:                   11211,
		Data:                   "./sonae-data",
		Engine:                 EnginePebble,
		Name:                   "sonae",
		DivBits:                9,
		Redundancy:             2,
		MaxVoters:              3,
		GossipProfile:          "lan",
		ReplicationTimeout:     Duration(2 * time.Second),
		ReadLease:              Duration(time.Second),
		EventHandlerTimeout:    Duration(30 * time.Second),
		MaxItemSize:            1 << 20,
		MaxConnections:         4096,
		IdleTimeout:            Duration(10 * time.Minute),
		MaxLineLength:          64 << 10,
		MaxPendingValueBytes:   256 << 20,
		Durability:             DurabilityInterval,
		SyncInterval:           Duration(50 * time.Millisecond),
		CacheSize:              128 << 20,
		RowCacheSize:           64 << 20,
		ChangeLogRetainEntries: 10000,
		ChangeLogRetainAge:     Duration(time.Hour),
		ExpiryScanInterval:     Duration(time.Second),
		LogLevel:               "info",
		LogFormat:              "text",
	}
}

var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks every field and reports all problems, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...)))
	}
	if c.Addr == "" {
		bad("addr", "must not be empty")
	} else if net.ParseIP(c.Addr) == nil && !validHostname(c.Addr) {
		bad("addr", "%q is neither an IP address nor a host name", c.Addr)
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "%d is outside 1..65535", c.Port)
	}
	if c.Engine != EnginePebble && c.Engine != EngineMemory {
		bad("engine", "%q is not one of pebble, memory", c.Engine)
	}
	if c.Engine == EnginePebble && c.Data == "" {
		bad("data", "must not be empty with the pebble engine")
	}
	if !clusterNameRE.MatchString(c.Name) {
		bad("name", "%q must be 1..64 characters of A-Z a-z 0-9 _ . -", c.Name)
	}
	if c.DivBits < 1 || c.DivBits > 16 {
		bad("div_bits", "%d is outside 1..16", c.DivBits)
	}
	c.validateCluster(bad)
	if c.MaxItemSize < 1 || c.MaxItemSize > 1<<30 {
		bad("max_item_size", "%d is outside 1..1073741824", c.MaxItemSize)
	}
	if c.MaxConnections < 1 {
		bad("max_connections", "%d must be at least 1", c.MaxConnections)
	}
	if c.IdleTimeout < 0 {
		bad("idle_timeout", "%s must not be negative", time.Duration(c.IdleTimeout))
	}
	if c.MaxLineLength < 512 || c.MaxLineLength > 16<<20 {
		bad("max_line_length", "%d is outside 512..16777216", c.MaxLineLength)
	}
	if c.MaxPendingValueBytes < int64(c.MaxItemSize) {
		bad("max_pending_value_bytes", "%d is smaller than max_item_size (%d)", c.MaxPendingValueBytes, c.MaxItemSize)
	}
	if c.Durability != DurabilityInterval && c.Durability != DurabilityFsync {
		bad("durability", "%q is not one of interval, fsync", c.Durability)
	}
	if c.Durability == DurabilityInterval && (c.SyncInterval <= 0 || time.Duration(c.SyncInterval) > time.Minute) {
		bad("sync_interval", "%s is outside (0, 1m]", time.Duration(c.SyncInterval))
	}
	if c.CacheSize < 0 {
		bad("cache_size", "%d must not be negative", c.CacheSize)
	}
	if c.RowCacheSize < 0 {
		bad("row_cache_size", "%d must not be negative", c.RowCacheSize)
	}
	if c.ChangeLogRetainEntries < 1 {
		bad("changelog_retain_entries", "%d must be at least 1", c.ChangeLogRetainEntries)
	}
	if c.ChangeLogRetainAge <= 0 {
		bad("changelog_retain_age", "%s must be positive", time.Duration(c.ChangeLogRetainAge))
	}
	if c.ExpiryScanInterval <= 0 {
		bad("expiry_scan_interval", "%s must be positive", time.Duration(c.ExpiryScanInterval))
	}
	if c.Threads < 0 || c.Threads > 1024 {
		bad("threads", "%d is outside 0..1024 (0 = the CPUs available)", c.Threads)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "%q is not one of text, json", c.LogFormat)
	}
	return errors.Join(errs...)
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

func validHostname(s string) bool { return hostnameRE.MatchString(s) }

// NodeID returns the node id, HOST_PORT, as ROMA spells it, from the
// advertised host.
func (c *Config) NodeID() string { return fmt.Sprintf("%s_%d", c.AdvertiseHost(), c.Port) }

// AdvertiseHost is Advertise, or Addr when Advertise is empty.
func (c *Config) AdvertiseHost() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Addr
}

// AdvertiseAddr is HOST:PORT at which peers and clients reach this node.
func (c *Config) AdvertiseAddr() string {
	return net.JoinHostPort(c.AdvertiseHost(), fmt.Sprint(c.Port))
}

// ClientAddr returns HOST:PORT for net.Listen.
func (c *Config) ClientAddr() string {
	return net.JoinHostPort(c.Addr, fmt.Sprint(c.Port))
}

// Decode reads YAML from r over c, so keys absent from the file keep the
// values c already has. Unknown keys are errors that name the key.
func (c *Config) Decode(r io.Reader) error {
	src, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is a valid, empty config
		}
		return fmt.Errorf("%w: %s", ErrInvalid, nameKeys(src, err.Error()))
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// nameKeys puts the top-level key after each "line N: " of a YAML error, so
// that a value of the wrong type ("port: abc") names its key, as validation
// errors do.
func nameKeys(src []byte, msg string) string {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return msg
	}
	keys := map[string]string{} // line number -> key
	kv := doc.Content[0].Content
	for i := 0; i+1 < len(kv); i += 2 {
		keys[fmt.Sprint(kv[i+1].Line)] = kv[i].Value
		keys[fmt.Sprint(kv[i].Line)] = kv[i].Value
	}
	return yamlLineRE.ReplaceAllStringFunc(msg, func(s string) string {
		if k, ok := keys[yamlLineRE.FindStringSubmatch(s)[1]]; ok {
			return s + k + ": "
		}
		return s
	})
}

// LoadFile reads the YAML file at path over c.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.Decode(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// YAML renders c as a config file.
func (c *Config) YAML() []byte {
	b, err := yaml.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("config: marshal: %v", err)) // only plain fields: cannot fail
	}
	return b
}

// ConfigPath is the file the config was loaded from, or "" for none. It is
// set by cmd/sonaed and not read from YAML.
func (c *Config) ConfigPath() string { return c.configPath }

// SetConfigPath records the file the config was loaded from.
func (c *Config) SetConfigPath(p string) { c.configPath = p }

// StoragePath is where the engine keeps data: the data directory for
// pebble, "memory" for the memory engine.
func (c *Config) StoragePath() string {
	if c.Engine == EngineMemory {
		return "memory"
	}
	return c.Data
}

// EffectiveThreads resolves Threads: 0 means runtimeDefault, the Go
// runtime's own GOMAXPROCS.
func (c *Config) EffectiveThreads(runtimeDefault int) int {
	if c.Threads > 0 {
		return c.Threads
	}
	return runtimeDefault
}

// Override copies into c the field of src whose YAML key is key. sonaed uses
// it to lay the flags that were set over the file, with flag names being the
// keys with dashes.
func (c *Config) Override(key string, src *Config) error {
	dst, from := reflect.ValueOf(c).Elem(), reflect.ValueOf(src).Elem()
	t := dst.Type()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == key && tag != "" {
			dst.Field(i).Set(from.Field(i))
			return nil
		}
	}
	return fmt.Errorf("%w: no config key %q", ErrInvalid, key)
}

// Keys lists every YAML key, in field order.
func Keys() []string {
	t := reflect.TypeFor[Config]()
	var keys []string
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			keys = append(keys, tag)
		}
	}
	return keys
}

// Set implements pflag.Value (and flag.Value), so a flag can bind to a
// Duration field directly.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 50ms, 10s, 5m)", s)
	}
	*d = Duration(v)
	return nil
}

// String implements pflag.Value.
func (d *Duration) String() string { return time.Duration(*d).String() }

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }
