package channels

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustNew is New for a configuration known to be valid.
func mustNew(cfg Config, now time.Time, deliver func(int, []byte)) *Engine {
	e, err := New(cfg, now, deliver)
	if err != nil {
		panic(err)
	}
	return e
}

// New refuses every negative size and duration, naming the field, rather
// than taking it for the default.
func TestNewValidatesConfig(t *testing.T) {
	for field, cfg := range map[string]Config{
		"MaxPayload":     {MaxPayload: -1},
		"SendBufferSize": {SendBufferSize: -1},
		"RecvWindow":     {RecvWindow: -1},
		"NagleDelay":     {NagleDelay: -time.Millisecond},
		"NagleThreshold": {NagleThreshold: -1},
		"MaxAckDelay":    {MaxAckDelay: -1},
		"InitialRTT":     {InitialRTT: -time.Second},
	} {
		e, err := New(cfg, time.Now(), func(int, []byte) {})
		var ce *ConfigError
		if assert.True(t, errors.As(err, &ce), "%s: %v", field, err) {
			assert.Equal(t, "channels.Config", ce.Config)
			assert.Equal(t, field, ce.Field)
		}
		assert.Nil(t, e, field)
	}
	e, err := New(Config{}, time.Now(), func(int, []byte) {})
	require.NoError(t, err)
	require.NotNil(t, e)
}
