package stunpad

import (
	"strings"
	"testing"

	"github.com/pion/stun"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBindingRequestIsTheSizeOfTheLargestAnswer(t *testing.T) {
	m, err := BindingRequest()
	require.NoError(t, err)
	assert.Len(t, m.Raw, BindingAnswer)
	var got stun.Message
	require.NoError(t, stun.Decode(m.Raw, &got))
	require.NoError(t, stun.Fingerprint.Check(&got))
	assert.Equal(t, stun.BindingRequest, got.Type)
}

// An unauthenticated TURN request grows to the size of its answer, keeps
// its transaction ID, its attributes and a right FINGERPRINT; anything
// else stays as it is.
func TestRequestPadsOnlyUnauthenticatedTURNRequests(t *testing.T) {
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	for _, setters := range [][]stun.Setter{
		{stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint},
		{stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport},
		{stun.NewType(stun.MethodRefresh, stun.ClassRequest), stun.NewSoftware("a client"), stun.Fingerprint},
	} {
		m, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
		require.NoError(t, err)
		padded := Request(m.Raw, UnauthenticatedTURNAnswer)
		assert.GreaterOrEqual(t, len(padded), UnauthenticatedTURNAnswer)
		assert.Less(t, len(padded), UnauthenticatedTURNAnswer+4)
		var got stun.Message
		require.NoError(t, stun.Decode(padded, &got))
		assert.Equal(t, m.TransactionID, got.TransactionID)
		assert.Equal(t, m.Type, got.Type)
		for _, a := range m.Attributes {
			assert.True(t, got.Contains(a.Type), "%v lost", a.Type)
		}
		if m.Contains(stun.AttrFingerprint) {
			require.NoError(t, stun.Fingerprint.Check(&got))
			assert.Equal(t, stun.AttrFingerprint, got.Attributes[len(got.Attributes)-1].Type, "FINGERPRINT last")
		}
		sw, err := got.Get(stun.AttrSoftware)
		require.NoError(t, err)
		if old, err := m.Get(stun.AttrSoftware); err == nil {
			assert.Equal(t, string(old), strings.TrimRight(string(sw), " "), "the client's own SOFTWARE, padded")
		} else {
			assert.Equal(t, "p2pcompat", strings.TrimRight(string(sw), " "))
		}
	}
	for _, m := range []*stun.Message{
		stun.MustBuild(stun.TransactionID, stun.BindingRequest),
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse)),
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), stun.NewShortTermIntegrity("key")),
	} {
		assert.Equal(t, m.Raw, Request(m.Raw, UnauthenticatedTURNAnswer), "%v changed", m.Type)
	}
	assert.Equal(t, []byte{0x40, 0, 0, 0}, Request([]byte{0x40, 0, 0, 0}, UnauthenticatedTURNAnswer), "ChannelData changed")
}
