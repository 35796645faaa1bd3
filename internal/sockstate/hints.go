package sockstate

import "fmt"

// Thresholds are the socket counts from which Hints speaks up.
type Thresholds struct {
	// TimeWait: a TIME_WAIT socket lives 60 s (TCP_TIMEWAIT_LEN), so
	// 1000 of them is about 17 connections a second closed by this side.
	// Harmless in itself (the kernel caps them at tcp_max_tw_buckets), but
	// a client side reusing one destination has only ip_local_port_range
	// (28232 ports by default) to share between them and new connects.
	TimeWait int
	// SynRecv (SYN_RECV + NEW_SYN_RECV): a handshake normally leaves this
	// state after one round trip, so on a healthy server the count is the
	// SYN rate times the RTT: a few, not hundreds. 100 waiting requests
	// means SYN-ACKs are not being answered.
	SynRecv int
	// CloseWait: the peer has closed and the local application has not.
	// Nothing in the kernel times this state out, so every one is a
	// socket the application still holds; 100 is past any short delay
	// between read() returning 0 and close().
	CloseWait int
}

// DefaultThresholds are the thresholds `synq states` uses.
var DefaultThresholds = Thresholds{TimeWait: 1000, SynRecv: 100, CloseWait: 100}

// Hint is one observation about a namespace's socket states.
type Hint struct {
	// State is what was counted: "TIME_WAIT", "SYN_RECV+NEW_SYN_RECV" or
	// "CLOSE_WAIT".
	State     string
	Count     int
	Threshold int
	// TopPort is the local port with the most such sockets, and how many.
	TopPort      uint16
	TopPortCount int
	Message      string
}

func (h Hint) String() string {
	s := fmt.Sprintf("%d %s (threshold %d): %s", h.Count, h.State, h.Threshold, h.Message)
	if h.TopPortCount > 0 {
		s += fmt.Sprintf("; most on local port %d (%d)", h.TopPort, h.TopPortCount)
	}
	return s
}

// Hints returns what the counts suggest, per the thresholds; a threshold
// of 0 or less turns its hint off.
func (c *Counts) Hints(th Thresholds) []Hint {
	var out []Hint
	check := func(label string, n, limit int, msg string, states ...State) {
		if limit <= 0 || n < limit {
			return
		}
		h := Hint{State: label, Count: n, Threshold: limit, Message: msg}
		h.TopPort, h.TopPortCount = c.topPort(states...)
		out = append(out, h)
	}
	check("TIME_WAIT", c.States[TimeWait], th.TimeWait,
		"connections opened and closed, e.g. no HTTP keep-alive; the side that closes first keeps each 4-tuple for 60 s",
		TimeWait)
	check("SYN_RECV+NEW_SYN_RECV", c.States[SynRecv]+c.States[NewSynRecv], th.SynRecv,
		"SYN flood or lost ACKs: handshakes are not completing (see TcpExt.ListenDrops, TCPReqQFullDrop, SyncookiesSent)",
		SynRecv, NewSynRecv)
	check("CLOSE_WAIT", c.States[CloseWait], th.CloseWait,
		"the application does not close its sockets: the peer closed them and nothing times this state out",
		CloseWait)
	return out
}

// topPort is the local port with the most sockets in the given states,
// the lowest port on a tie.
func (c *Counts) topPort(states ...State) (uint16, int) {
	per := map[uint16]int{}
	for k, n := range c.Ports {
		for _, s := range states {
			if k.State == s {
				per[k.Port] += n
			}
		}
	}
	var port uint16
	best := 0
	for p, n := range per {
		if n > best || n == best && p < port {
			port, best = p, n
		}
	}
	return port, best
}
