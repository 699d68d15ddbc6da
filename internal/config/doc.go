// Package config owns sonaed's configuration: the Config struct with its
// embedded defaults, strict YAML loading (unknown keys are refused), and
// validation whose errors name the offending key. Flags are applied on top of
// the file by cmd/sonaed; this package has no flag parsing of its own.
package config
