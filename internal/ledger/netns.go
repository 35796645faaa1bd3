package ledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/synq-trace/synq/internal/netns"
	"github.com/synq-trace/synq/internal/netstat"
	"github.com/synq-trace/synq/tracer"
	"golang.org/x/sys/unix"
)

// Namespace is a network namespace whose listeners synq lists.
type Namespace struct {
	Inode uint64
	Name  string // under /run/netns, "" if none
	// Do runs fn on an OS thread inside the namespace: netns.NS.Do,
	// netns.Held.Do or netlab.Netns.Do.
	Do func(fn func() error) error
	// Orphaned, if set, says that nothing but its holders (synq, sockets)
	// refers to the namespace any more (see Hold).
	Orphaned func() bool
}

// Hold opens ns and keeps it open until release: a namespace deleted with
// `ip netns del` while something still uses it stays listed, and when
// nothing but synq holds it any more, Walk says so once.
func Hold(ns netns.NS) (n Namespace, release func(), err error) {
	h, err := ns.Hold()
	if err != nil {
		return Namespace{}, nil, err
	}
	return Namespace{Inode: h.Inode, Name: h.Name, Do: h.Do, Orphaned: h.Orphaned}, func() { h.Close() }, nil
}

func (n Namespace) String() string {
	if n.Name != "" {
		return fmt.Sprintf("%s (net:[%d])", n.Name, n.Inode)
	}
	return fmt.Sprintf("net:[%d]", n.Inode)
}

// FromNS adapts a namespace found by internal/netns.
func FromNS(ns netns.NS) Namespace {
	return Namespace{Inode: ns.Inode, Name: ns.Name, Do: ns.Do}
}

// AllNamespaces lists every namespace netns.All finds: those with a name
// under /run/netns or a process in them.
func AllNamespaces() ([]Namespace, error) {
	all, err := netns.All()
	if err != nil {
		return nil, err
	}
	out := make([]Namespace, len(all))
	for i, ns := range all {
		out[i] = FromNS(ns)
	}
	return out, nil
}

// Lister lists the listening sockets of the calling thread's network
// namespace; *tracer.Snapshotter is one.
type Lister interface {
	Listeners() ([]tracer.Listener, error)
}

// Walker lists the listeners of every network namespace, or of one: the one
// walk over namespaces in synq. Safe for concurrent use.
//
// Its error policy: with Only, a namespace that cannot be listed fails the
// walk. Otherwise a namespace that cannot be entered or listed is left out
// of the listeners, kept in the View with its reason (NetnsView.Err), and
// said once through Report: the first time, and again only if the reason
// changes. A namespace that vanishes between being found and being entered
// is not an error; one that was listed before and is gone is said once.
type Walker struct {
	Lister Lister
	// Only is the one namespace to walk; nil walks every namespace
	// Discover finds.
	Only *Namespace
	// Discover lists the namespaces (AllNamespaces when nil).
	Discover func() ([]Namespace, error)
	// Port keeps only the listeners on this local port; 0 keeps all.
	Port uint16
	// MIB also reads each namespace's /proc/net counters (netstat.ReadMIB),
	// after its listeners, in the same visit.
	MIB bool
	// ReadMIB reads them (netstat.ReadMIB when nil).
	ReadMIB func() (netstat.Snapshot, error)
	// MIBOf, if set, says which namespaces' counters MIB reads (given the
	// namespace and its listeners); nil reads every one's. Reading them
	// costs about as much as listing the listeners, more with many CPUs.
	MIBOf func(ns Namespace, listeners []tracer.Listener) bool
	// Report says once what could not be seen and why (nil: silent).
	Report func(msg string)

	mu     sync.Mutex
	said   map[uint64]string // the reason last said, per namespace
	listed map[uint64]Namespace
	lastN  int
}

// NetnsView is one namespace as one walk saw it.
type NetnsView struct {
	NS        Namespace
	Listeners []tracer.Listener // port-filtered
	MIB       netstat.Snapshot  // with Walker.MIB
	At        time.Time         // when its counters were read
	Err       error             // why it could not be listed; nil if it was
}

// View is one walk over the namespaces.
type View struct {
	Time  time.Time
	Netns []NetnsView
	// Gone: namespaces listed by an earlier walk that no process and no
	// /run/netns name refers to any more.
	Gone []Namespace
}

// Listeners returns every listener of the walk.
func (v *View) Listeners() []tracer.Listener {
	n := 0
	for i := range v.Netns {
		n += len(v.Netns[i].Listeners)
	}
	out := make([]tracer.Listener, 0, n)
	for i := range v.Netns {
		out = append(out, v.Netns[i].Listeners...)
	}
	return out
}

// Names maps the inode of each named namespace walked to its name (keyed
// as tracer events key namespaces).
func (v *View) Names() map[uint32]string {
	out := map[uint32]string{}
	for _, n := range v.Netns {
		if n.NS.Name != "" {
			out[uint32(n.NS.Inode)] = n.NS.Name
		}
	}
	return out
}

// Complete says every namespace found was listed.
func (v *View) Complete() bool {
	for _, n := range v.Netns {
		if n.Err != nil {
			return false
		}
	}
	return true
}

// Walk lists the listeners of every namespace once. With Only, a failure
// to list it is also returned as an error, with the View that says it.
func (w *Walker) Walk() (*View, error) {
	var found []Namespace
	if w.Only != nil {
		found = []Namespace{*w.Only}
	} else {
		discover := w.Discover
		if discover == nil {
			discover = AllNamespaces
		}
		var err error
		if found, err = discover(); err != nil {
			return nil, fmt.Errorf("list network namespaces: %w", err)
		}
	}
	w.mu.Lock()
	hint := w.lastN
	w.mu.Unlock()
	v := &View{Netns: make([]NetnsView, 0, len(found))}
	total := 0
	for _, ns := range found {
		nv := NetnsView{NS: ns}
		ls := make([]tracer.Listener, 0, hint/max(len(found), 1))
		nv.Err = ns.Do(func() error {
			all, err := w.Lister.Listeners()
			if err != nil {
				return err
			}
			for _, l := range all {
				if w.Port == 0 || l.Port == w.Port {
					ls = append(ls, l)
				}
			}
			if w.MIB && (w.MIBOf == nil || w.MIBOf(ns, ls)) {
				read := w.ReadMIB
				if read == nil {
					read = netstat.ReadMIB
				}
				nv.MIB, err = read()
				nv.At = time.Now()
			}
			return err
		})
		if nv.Err != nil {
			if w.Only == nil && vanished(nv.Err) && !w.wasListed(ns.Inode) {
				// Found, then gone before synq entered it: never seen,
				// nothing to say.
				continue
			}
		} else {
			nv.Listeners = ls
			total += len(ls)
		}
		v.Netns = append(v.Netns, nv)
	}
	v.Time = time.Now()
	w.account(v, found)
	if w.Only != nil && v.Netns[0].Err != nil {
		return v, fmt.Errorf("netns %s: %w", w.Only, v.Netns[0].Err)
	}
	return v, nil
}

func (w *Walker) wasListed(inode uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.listed[inode]
	return ok
}

// account applies the error policy and remembers what was listed: each
// namespace that could not be listed is said once (again only if why
// changes), those with the same reason in one line.
func (w *Walker) account(v *View, found []Namespace) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.said == nil {
		w.said, w.listed = map[uint64]string{}, map[uint64]Namespace{}
	}
	w.lastN = len(v.Listeners())
	byWhy := map[string][]string{}
	for _, n := range v.Netns {
		if n.Err == nil {
			w.listed[n.NS.Inode] = n.NS
			delete(w.said, n.NS.Inode)
			continue
		}
		if w.Only != nil {
			continue // Walk returns it
		}
		why := Why(n.Err)
		if w.said[n.NS.Inode] == why {
			continue
		}
		w.said[n.NS.Inode] = why
		byWhy[why] = append(byWhy[why], n.NS.String())
	}
	var msgs []string
	for why, names := range byWhy {
		what := "netns " + names[0]
		if len(names) > 1 {
			what = fmt.Sprintf("%d network namespaces (%s)", len(names), strings.Join(names, ", "))
		}
		msgs = append(msgs, fmt.Sprintf("cannot list the listeners of %s: %s", what, why))
	}
	if w.Only != nil && w.Only.Orphaned != nil && v.Netns[0].Err == nil {
		if w.Only.Orphaned() {
			v.Gone = []Namespace{*w.Only}
			if w.said[w.Only.Inode] != "orphaned" {
				w.said[w.Only.Inode] = "orphaned"
				msgs = append(msgs, fmt.Sprintf("netns %s: no process and no /run/netns name refers to it any more; synq holds it open and goes on watching it", w.Only))
			}
		} else if w.said[w.Only.Inode] == "orphaned" {
			delete(w.said, w.Only.Inode)
		}
	}
	if w.Only == nil {
		present := make(map[uint64]bool, len(found))
		for _, ns := range found {
			present[ns.Inode] = true
		}
		for ino, ns := range w.listed {
			if !present[ino] {
				v.Gone = append(v.Gone, ns)
				delete(w.listed, ino)
				msgs = append(msgs, fmt.Sprintf("netns %s is gone: no process and no /run/netns name refers to it any more", ns))
			}
		}
	}
	sort.Slice(v.Gone, func(i, j int) bool { return v.Gone[i].Inode < v.Gone[j].Inode })
	sort.Strings(msgs)
	if w.Report != nil {
		for _, m := range msgs {
			w.Report(m)
		}
	}
}

// Why words why a namespace could not be listed.
func Why(err error) string {
	if errors.Is(err, unix.EPERM) {
		return "not allowed to enter (needs CAP_SYS_ADMIN)"
	}
	return err.Error()
}

// vanished: the namespace is no longer there to enter.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, netns.ErrGone)
}

// ViewOf is a walk that found these listeners, one namespace each of theirs
// (for callers that list listeners themselves).
func ViewOf(ls []tracer.Listener) *View {
	v := &View{Time: time.Now()}
	at := map[uint32]int{}
	for _, l := range ls {
		i, ok := at[l.Netns]
		if !ok {
			i = len(v.Netns)
			at[l.Netns] = i
			v.Netns = append(v.Netns, NetnsView{NS: Namespace{Inode: uint64(l.Netns)}})
		}
		v.Netns[i].Listeners = append(v.Netns[i].Listeners, l)
	}
	return v
}
