package session

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2pcompat/p2pcompat/callbacks"
	"github.com/p2pcompat/p2pcompat/channels"
)

// NewManager refuses a missing SteamID and every negative duration and
// count, naming the field, rather than taking it for the default.
func TestNewManagerValidatesConfig(t *testing.T) {
	for field, cfg := range map[string]Config{
		"SteamID":           {},
		"ConnectTimeout":    {SteamID: 1, ConnectTimeout: -time.Second},
		"IdleTimeout":       {SteamID: 1, IdleTimeout: -1},
		"KeepaliveInterval": {SteamID: 1, KeepaliveInterval: -1},
		"RequestRepeat":     {SteamID: 1, RequestRepeat: -1},
		"RequestRate":       {SteamID: 1, RequestRate: math.NaN()},
		"RequestBurst":      {SteamID: 1, RequestBurst: -1},
		"MaxSessions":       {SteamID: 1, MaxSessions: -1},
		"MaxChannels":       {SteamID: 1, MaxChannels: -1},
		"Engine.NagleDelay": {SteamID: 1, Engine: channels.Config{NagleDelay: -time.Millisecond}},
	} {
		m, err := NewManager(cfg, nil, callbacks.New(0))
		var ce *ConfigError
		if assert.True(t, errors.As(err, &ce), "%s: %v", field, err) {
			assert.Equal(t, "session.Config", ce.Config)
			assert.Equal(t, field, ce.Field)
		}
		assert.Nil(t, m, field)
	}
	m, err := NewManager(Config{SteamID: 1}, nil, callbacks.New(0))
	require.NoError(t, err)
	assert.NotZero(t, m.PublicKey(), "a key of its own without Config.PrivateKey")
}
