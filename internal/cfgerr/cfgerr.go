// Package cfgerr is the error every constructor of the module returns for
// a configuration it refuses. Each public package that takes a Config
// names it ConfigError, by alias, so that one errors.As catches a refusal
// from any of them.
package cfgerr

import "strings"

// Error names the field of a configuration that was refused, and why.
type Error struct {
	// Config is the configuration's type with its package:
	// "p2p.Config", "rendezvous.ServerConfig".
	Config string
	// Field is the field as a Go expression on it: "ConnectTimeout",
	// "Simulate.FakePacketLagSend", "TURN[2]".
	Field string
	// Reason says what is wrong with the value: "must not be negative".
	Reason string
}

func (e *Error) Error() string {
	pkg, typ, _ := strings.Cut(e.Config, ".")
	return pkg + ": invalid " + typ + "." + e.Field + ": " + e.Reason
}

// New is an Error for field of config.
func New(config, field, reason string) *Error {
	return &Error{Config: config, Field: field, Reason: reason}
}

// Negative is the Error for a field that must not be negative.
func Negative(config, field string) *Error {
	return New(config, field, "must not be negative")
}
