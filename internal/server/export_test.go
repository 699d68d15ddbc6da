package server_test

import (
	"github.com/sonae-kv/sonae/internal/config"
	"github.com/sonae-kv/sonae/internal/server"
)

type configT = config.Config

func durationT(d interface{ Nanoseconds() int64 }) config.Duration {
	return config.Duration(d.Nanoseconds())
}

func versionString() string { return server.ProtocolLevel + "-sonae-" + server.Version }
