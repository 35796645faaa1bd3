package tracer

import "testing"

func TestReqQueueFullFixed(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"5.10.223", false}, {"5.10.262", true}, {"5.15.100", false}, {"6.1.192", true},
		{"6.6.87", true}, {"6.12.117", true}, {"6.13.0", true}, {"6.18.44-fc-v657", true}, {"7.2.12", true}, {"6.5.0", false},
	} {
		if got := reqQueueFullFixed(parseVersion(c.v)); got != c.want {
			t.Errorf("%s: fixed %v, want %v", c.v, got, c.want)
		}
	}
}
