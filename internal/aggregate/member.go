package aggregate

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/synq-trace/synq/tracer"
)

// Members numbers the sockets of each SO_REUSEPORT group: listeners that
// share a netns, an address and a port (the kernel allows it only with
// SO_REUSEPORT) get 1, 2, ... in inode order, keyed by inode. A listener
// alone on its address and port is absent. Every command numbers a group
// the same way as long as it sees the same sockets.
func Members(ls []tracer.Listener) map[uint64]int {
	groups := map[tracer.Endpoint][]uint64{}
	for _, l := range ls {
		groups[l.Endpoint] = append(groups[l.Endpoint], l.Inode)
	}
	out := map[uint64]int{}
	for _, inos := range groups {
		slices.Sort(inos)
		inos = slices.Compact(inos)
		if len(inos) < 2 {
			continue
		}
		for i, ino := range inos {
			out[ino] = i + 1
		}
	}
	return out
}

// MemberLabel is ep as addr:port, with "#k" for the k-th member of an
// SO_REUSEPORT group (member 0: not in one).
func MemberLabel(ep tracer.Endpoint, member int) string {
	if member == 0 {
		return ep.String()
	}
	return ep.String() + "#" + strconv.Itoa(member)
}

// maxAcceptors bounds the processes remembered accepting from one listener.
const maxAcceptors = 8

// acceptors remembers, per listener, the processes accept events showed
// accepting from it, most recent first. Every worker of a pre-forking
// server holds every socket; the one that accepts from a socket is the one
// that serves its queue.
type acceptors map[tracer.ListenerID][]Owner

func (a acceptors) observe(ev *tracer.Event) {
	if ev.Kind != tracer.KindAccept || ev.Listener == 0 || ev.PID == 0 {
		return
	}
	a.add(ev.Listener, int(ev.PID), ev.Comm.String())
}

// add puts pid first among id's acceptors. comm "" is read from /proc when
// pid is new there (the kernel's maxima carry no name).
func (a acceptors) add(id tracer.ListenerID, pid int, comm string) {
	list := a[id]
	if len(list) > 0 && list[0].PID == pid {
		return
	}
	if i := slices.IndexFunc(list, func(o Owner) bool { return o.PID == pid }); i >= 0 && comm == "" {
		comm = list[i].Comm
	}
	if comm == "" {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		comm = strings.TrimSpace(string(b))
	}
	list = slices.DeleteFunc(list, func(o Owner) bool { return o.PID == pid })
	if len(list) >= maxAcceptors {
		list = list[:maxAcceptors-1]
	}
	a[id] = slices.Insert(list, 0, Owner{PID: pid, Comm: comm, Accepting: true})
}

// MarkAccepting returns owners (the processes holding a socket) with the
// ones seen accepting from it first, marked Accepting; an acceptor holding
// no descriptor of it any more is listed too.
func MarkAccepting(owners, acc []Owner) []Owner {
	if len(acc) == 0 {
		return owners
	}
	out := make([]Owner, 0, len(owners)+len(acc))
	for _, a := range acc {
		if i := slices.IndexFunc(owners, func(o Owner) bool { return o.PID == a.PID }); i >= 0 {
			o := owners[i]
			o.Accepting = true
			out = append(out, o)
		} else {
			out = append(out, a)
		}
	}
	for _, o := range owners {
		if !slices.ContainsFunc(acc, func(a Owner) bool { return a.PID == o.PID }) {
			out = append(out, o)
		}
	}
	return out
}
