// Package tracer loads synq's BPF programs, attaches them at the best tier the
// running kernel allows and decodes what they report about the TCP listen
// path: SYN and accept queues, drops, cookies and accept latency.
package tracer

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Config selects what to trace and how.
type Config struct {
	Tier  Tier   // TierAuto picks the best the kernel allows
	Netns uint32 // inode of the only netns to trace; 0 = all
	Port  uint16 // only listeners on this local port; 0 = all
	// Kinds streamed through the ring buffer; nil = all. Per-listener
	// counters (Counts) are kept for every kind regardless, with one
	// exception: on the tracepoint tier accept(2) is hooked only when
	// KindAccept is streamed or AcceptLatency asked for (its syscall
	// tracepoints slow down every syscall on the host), so accepts are not
	// counted otherwise.
	Kinds []Kind
	// AcceptLatency hooks accepts even when KindAccept is not streamed, so
	// that Counts and Histograms count them and their latency: for readers
	// of the kernel's aggregates that need no event per connection.
	AcceptLatency bool
	// NoMaxima: Maxima is never called, so the kernel keeps no exact
	// maxima (listener_max: a per-CPU hash lookup per enqueue, accept and,
	// on the fentry and kprobe tiers, SYN). For readers of the counters
	// and histograms alone (synq serve).
	NoMaxima bool
	// SampleEvery streams one in SampleEvery of the high-rate kinds (syn,
	// enqueue, accept); 0 or 1 streams all. Drops, cookies, retransmits and
	// overflows are always streamed; Counts and Histograms see every event.
	SampleEvery uint32
	// RingBytes is the ring buffer size (power of two, multiple of the page
	// size); 0 = 4 MiB.
	RingBytes int
	// WakeupBytes: the kernel wakes the reader only once this many bytes are
	// waiting; below it the reader polls every PollInterval. 0 = wake on every
	// record (lowest latency, highest cost).
	WakeupBytes  uint64
	PollInterval time.Duration
	// BTFPath overrides the kernel BTF (default /sys/kernel/btf/vmlinux).
	BTFPath string
	// KallsymsPath overrides /proc/kallsyms (tests).
	KallsymsPath string
}

// HookStatus reports one program of the chosen tier.
type HookStatus struct {
	Program string
	Target  string // kernel function or tracepoint
	Err     error  // nil when attached
}

// Info describes what the tracer attached.
type Info struct {
	Tier    Tier
	Kernel  string
	Hooks   []HookStatus
	Skipped map[Tier]error // better tiers that failed, with the kernel's reason
	// ExactListenDrops is true when per-listener ListenDrops can be derived
	// exactly (see ListenDrops).
	ExactListenDrops bool
	Notes            []string

	// ExactDropReasons: the SYN- and ACK-side hooks classify each drop by
	// the kernel's own per-CPU counters (ListenOverflows, TCPReqQFullDrop)
	// rather than by queue lengths, which race with other CPUs.
	ExactDropReasons bool
	// EnqueueListener: enqueues are attributed to their listener (with the
	// queue depth). False on the tracepoint tier before 6.6 (no
	// sk_data_ready tracepoint): they are counted under listener 0.
	EnqueueListener bool

	features kernelFeatures
}

// Kinds returns the event kinds the attached hooks can produce.
func (i Info) Kinds() []Kind {
	attached := map[string]bool{}
	for _, h := range i.Hooks {
		if h.Err == nil {
			attached[h.Program] = true
		}
	}
	has := func(p ...string) bool {
		for _, x := range p {
			if attached[x] {
				return true
			}
		}
		return false
	}
	var ks []Kind
	for _, k := range i.Tier.Kinds() {
		ok := true
		switch k {
		case KindSynackRetrans:
			ok = has("tp_synack_retrans")
		case KindAckOverflow:
			ok = has("fx_syn_recv4_a6", "fx_syn_recv4_a7", "krp_syn_recv4") ||
				(has("tp_kfree_skb") && i.features.listenOverflowReason)
		case KindAccept:
			ok = has("tp_exit_accept4", "fx_accept_a2", "fx_accept_a4", "krp_accept")
		case KindCookie:
			ok = has("fe_cookie_v4", "kp_cookie_v4")
		}
		if ok {
			ks = append(ks, k)
		}
	}
	return ks
}

// Tracer is a loaded and attached set of programs. Close releases every
// program, link and map.
type Tracer struct {
	cfg        Config
	info       Info
	kspec      *btf.Spec
	btfCache   *btf.Cache
	syms       map[string]symRange // kallsyms, read once (symbols)
	kfuncs     map[string]bool     // kprobeFuncs that kallsyms lists (symbols)
	specs      map[string]*ebpf.CollectionSpec
	maps       map[string]*ebpf.Map
	colls      []*ebpf.Collection
	links      []link.Link
	progs      map[string]*ebpf.Program
	reader     *ringbuf.Reader
	bootOffset time.Duration
	iter       *ebpf.Collection
	closeOnce  sync.Once
	badRecords atomic.Uint64
}

// ErrNoBTF is returned when the kernel exposes no BTF.
var ErrNoBTF = errors.New("no kernel BTF")

// loadKernelBTF loads the BTF programs are relocated against (CO-RE) and a
// cache of the running kernel's BTF, which the loader searches for attach
// targets (tp_btf, fentry, iter). Every collection loaded without a shared
// cache parses vmlinux again: tens of ms and MBs each, and the tracer loads
// one collection per program. Without path the two are the same spec.
func loadKernelBTF(path string) (*btf.Spec, *btf.Cache, error) {
	cache := btf.NewCache()
	if path == "" {
		s, err := cache.Kernel()
		if err != nil {
			return nil, nil, fmt.Errorf("%w (/sys/kernel/btf/vmlinux: %v); synq needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", ErrNoBTF, err)
		}
		return s, cache, nil
	}
	s, err := loadBTFFile(path)
	if err != nil {
		return nil, nil, err
	}
	return s, cache, nil
}

func loadSpecs() (map[string]*ebpf.CollectionSpec, error) {
	loaders := map[string]func() (*ebpf.CollectionSpec, error){
		"tp": loadTp, "fentry": loadFentry, "kprobe": loadKprobe, "iter": loadIter,
	}
	specs := map[string]*ebpf.CollectionSpec{}
	for name, load := range loaders {
		s, err := load()
		if err != nil {
			return nil, fmt.Errorf("parse embedded %s object: %w", name, err)
		}
		specs[name] = s
	}
	return specs, nil
}

// Open probes the kernel, loads and attaches the best tier (or cfg.Tier).
func Open(cfg Config) (t *Tracer, err error) {
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if cfg.RingBytes == 0 {
		cfg.RingBytes = 4 << 20
	}
	if cfg.RingBytes < os.Getpagesize() || cfg.RingBytes&(cfg.RingBytes-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d is not a power of two of at least a page", cfg.RingBytes)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()

	kspec, cache, err := loadKernelBTF(cfg.BTFPath)
	if err != nil {
		return nil, err
	}
	specs, err := loadSpecs()
	if err != nil {
		return nil, err
	}
	t = &Tracer{cfg: cfg, kspec: kspec, btfCache: cache, specs: specs, maps: map[string]*ebpf.Map{}, progs: map[string]*ebpf.Program{}}
	// On any error, release what was built: the deferred call holds its
	// own pointer, as `return nil, err` sets t to nil.
	built := t
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	t.info.Kernel = kernelRelease()
	t.info.Skipped = map[Tier]error{}
	t.bootOffset = bootOffset()
	if note := ensureTracefs(); note != "" {
		t.info.Notes = append(t.info.Notes, note)
	}
	f := t.probe(kspec, kernelVersion())
	t.info.features = f
	if err := t.configure(f); err != nil {
		return nil, err
	}

	tiers := Tiers
	if cfg.Tier != TierAuto {
		tiers = []Tier{cfg.Tier}
	}
	for _, tier := range tiers {
		err = t.attachTier(tier, f)
		if err == nil {
			t.info.Tier = tier
			break
		}
		t.info.Skipped[tier] = err
		t.detach()
	}
	if err != nil {
		if cfg.Tier != TierAuto {
			return nil, fmt.Errorf("tier %s: %w", cfg.Tier, err)
		}
		return nil, fmt.Errorf("no tier could attach: %w", err)
	}
	if t.info.Tier == TierTracepoint {
		_, hasKfree := t.progs["tp_kfree_skb"]
		_, hasRcv := t.rcvRanges()
		t.info.ExactListenDrops = hasKfree && hasRcv
		t.info.ExactDropReasons = false // no SYN- or ACK-side hooks to classify drops
		t.info.EnqueueListener = f.dataReady
		if !f.dataReady {
			t.info.Notes = append(t.info.Notes, "no sk_data_ready tracepoint (6.6+): enqueue events carry no queue depths")
		}
		if !f.listenOverflowReason {
			t.info.Notes = append(t.info.Notes, "no TCP_LISTEN_OVERFLOW drop reason (6.15+): ack-overflow events only for cookie ACKs")
		}
		if !t.info.ExactListenDrops {
			t.info.Notes = append(t.info.Notes, "per-listener ListenDrops are approximated by sk_drops (needs the kfree_skb rx_sk argument, 6.11+, and readable kallsyms)")
		}
		t.info.Notes = append(t.info.Notes, "tracepoint tier: SYN-side events (syn, syn-drop, cookie) are invisible to tracepoints; SYN-side drops are derived per listener from sk_drops")
	} else {
		t.info.EnqueueListener = true
		t.info.ExactListenDrops = true
		if !t.info.ExactDropReasons {
			t.info.Notes = append(t.info.Notes, "drop reasons are inferred from queue lengths: exact ones need __per_cpu_offset in kallsyms (CONFIG_KALLSYMS_ALL, readable with CAP_SYSLOG)")
		}
	}
	t.reader, err = ringbuf.NewReader(t.maps["events"])
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	// Only loading needs the kernel's BTF and the object specs: do not keep
	// them for the life of `synq serve`.
	t.kspec, t.btfCache, t.specs = nil, nil, nil
	return t, nil
}

// configure sets the load-time constants and creates the maps all objects share.
func (t *Tracer) configure(f kernelFeatures) error {
	c := loadConfig(t.cfg, f, t.symbols())
	t.info.ExactDropReasons = c.PerCpuOffset != 0
	for name, spec := range t.specs {
		v, err := configVariable(name, spec)
		if err != nil {
			return fmt.Errorf("%s object: %w", name, err)
		}
		if err := v.Set(c); err != nil {
			return fmt.Errorf("%s object: set %s: %w", name, v.Name, err)
		}
		if ms, ok := spec.Maps["events"]; ok {
			ms.MaxEntries = uint32(t.cfg.RingBytes)
		}
	}
	// Every non-data map is created once and shared by name across objects
	// and programs; data sections (.rodata, .bss) stay per program.
	names := make([]string, 0, len(t.specs))
	for n := range t.specs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, obj := range names {
		for name, ms := range t.specs[obj].Maps {
			if strings.HasPrefix(name, ".") {
				continue
			}
			if _, ok := t.maps[name]; ok {
				continue
			}
			m, err := ebpf.NewMap(ms)
			if err != nil {
				return fmt.Errorf("create map %s: %w", name, err)
			}
			t.maps[name] = m
		}
	}
	return nil
}

func (t *Tracer) rcvRanges() (map[string]symRange, bool) {
	r := t.symbols()
	_, ok := r["tcp_v4_rcv"]
	return r, ok
}

// loadProgram loads one program in a collection of its own that shares the
// tracer's maps, so one program the kernel refuses hides no other.
func (t *Tracer) loadProgram(obj, name string) (*ebpf.Program, error) {
	spec := t.specs[obj].Copy()
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("program %s not in object %s", name, obj)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	repl := map[string]*ebpf.Map{}
	for n := range spec.Maps {
		if m, ok := t.maps[n]; ok {
			repl[n] = m
		}
	}
	opts := ebpf.CollectionOptions{MapReplacements: repl, Cache: t.btfCache}
	opts.Programs.KernelTypes = t.kspec
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("verifier rejected %s (%s): %v", name, ps.AttachTo, lastLines(ve.Log, 3))
		}
		if errors.Is(err, unix.EPERM) && ps.Type == ebpf.Tracing && (ps.AttachType == ebpf.AttachTraceFEntry || ps.AttachType == ebpf.AttachTraceFExit) {
			return nil, fmt.Errorf("the kernel refuses fentry/fexit programs (EPERM: lockdown or no BPF trampoline)")
		}
		return nil, err
	}
	t.colls = append(t.colls, coll)
	return coll.Programs[name], nil
}

func lastLines(log []string, n int) string {
	if len(log) > n {
		log = log[len(log)-n:]
	}
	return strings.Join(log, " | ")
}

func (t *Tracer) attachTier(tier Tier, f kernelFeatures) error {
	hooks, err := tier.hooks(f)
	if err != nil {
		return err
	}
	var statuses []HookStatus
	for _, h := range hooks {
		ps := t.specs[h.obj].Programs[h.prog]
		err := t.attachHook(h)
		if err != nil && h.fallback != nil {
			fb := t.specs[h.fallback.obj].Programs[h.fallback.prog]
			if ferr := t.attachHook(*h.fallback); ferr == nil {
				statuses = append(statuses, HookStatus{Program: h.fallback.prog, Target: fb.AttachTo})
				t.info.Notes = append(t.info.Notes, fmt.Sprintf("%s on %s: %v; using %s instead", h.prog, ps.AttachTo, err, h.fallback.prog))
				continue
			}
		}
		statuses = append(statuses, HookStatus{Program: h.prog, Target: ps.AttachTo, Err: err})
		if err != nil && h.core {
			return fmt.Errorf("%s on %s: %w", h.prog, ps.AttachTo, err)
		}
	}
	t.info.Hooks = statuses
	return nil
}

// attachHook loads and attaches one program.
func (t *Tracer) attachHook(h hook) error {
	ps := t.specs[h.obj].Programs[h.prog]
	prog, err := t.loadProgram(h.obj, h.prog)
	if err == nil {
		var l link.Link
		if l, err = attach(ps, prog); err == nil {
			t.links = append(t.links, l)
			t.progs[h.prog] = prog
			return nil
		}
	}
	if ps.Type == ebpf.Kprobe && !haveKprobes() {
		return errNoKprobes
	}
	return err
}

func attach(ps *ebpf.ProgramSpec, prog *ebpf.Program) (link.Link, error) {
	switch ps.Type {
	case ebpf.Tracing:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case ebpf.TracePoint:
		group, name, ok := strings.Cut(ps.AttachTo, "/")
		if !ok {
			return nil, fmt.Errorf("bad tracepoint %q", ps.AttachTo)
		}
		return link.Tracepoint(group, name, prog, nil)
	case ebpf.Kprobe:
		if strings.HasPrefix(ps.SectionName, "kretprobe/") {
			return link.Kretprobe(ps.AttachTo, prog, nil)
		}
		return link.Kprobe(ps.AttachTo, prog, nil)
	}
	return nil, fmt.Errorf("no attach method for %s (%s)", ps.Name, ps.Type)
}

// detach undoes a tier that failed half way.
func (t *Tracer) detach() {
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
	for _, c := range t.colls {
		c.Close()
	}
	t.colls = nil
	t.progs = map[string]*ebpf.Program{}
	t.info.Hooks = nil
}

// Info reports the chosen tier and every hook's status.
func (t *Tracer) Info() Info { return t.info }

// Close detaches every link and closes every program and map. Safe to call
// more than once and concurrently with Read (which then returns nil).
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		if t.reader != nil {
			t.reader.Close()
		}
		t.detach()
		if t.iter != nil {
			t.iter.Close()
		}
		for _, m := range t.maps {
			m.Close()
		}
	})
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// bootOffset converts CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall time.
func bootOffset() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - ts.Nano())
}
