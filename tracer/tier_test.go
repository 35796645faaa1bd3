package tracer

import (
	"fmt"
	"sort"
	"testing"
)

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

// featureSets are kernelFeatures covering every branch of Tier.hooks: each
// flag on and off, each known argument count of the functions whose
// signature changed.
func featureSets() []kernelFeatures {
	var out []kernelFeatures
	for bits := range 1 << 8 {
		on := func(i int) bool { return bits&(1<<i) != 0 }
		for _, accept := range []int{4, 2} {
			for _, recv := range []int{6, 7} {
				out = append(out, kernelFeatures{
					dataReady: on(0), kfreeRxSk: on(1), wantAccept: on(2), synFloodAction: on(3),
					haveSynRecv6: on(4), haveCookieV6: on(5),
					kprobeSynRecv6: on(4) || on(6), kprobeCookieV6: on(5) || on(7),
					acceptArgs: accept, synRecv4Args: recv, synRecv6Args: 13 - recv,
				})
			}
		}
	}
	return out
}

// Every program a tier lists, and every fallback, is a program of the
// embedded object it names; and every program of the tier objects is listed
// by some tier on some kernel (none is dead). No root needed: the objects are
// parsed, not loaded.
func TestHooksExistInObjects(t *testing.T) {
	specs, err := loadSpecs()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]map[string]bool{}
	reported := map[string]bool{}
	errorf := func(format string, args ...any) {
		t.Helper()
		if msg := fmt.Sprintf(format, args...); !reported[msg] {
			reported[msg] = true
			t.Error(msg)
		}
	}
	check := func(tier Tier, h hook) {
		t.Helper()
		spec, ok := specs[h.obj]
		if !ok {
			errorf("tier %s: hook %s names object %q, which is not embedded", tier, h.prog, h.obj)
			return
		}
		if _, ok := spec.Programs[h.prog]; !ok {
			errorf("tier %s: no program %s in object %s", tier, h.prog, h.obj)
		}
		if listed[h.obj] == nil {
			listed[h.obj] = map[string]bool{}
		}
		listed[h.obj][h.prog] = true
	}
	for _, tier := range Tiers {
		for _, f := range featureSets() {
			hs, err := tier.hooks(f)
			if err != nil {
				t.Fatalf("tier %s with %+v: %v", tier, f, err)
			}
			for _, h := range hs {
				check(tier, h)
				if h.fallback != nil {
					check(tier, *h.fallback)
				}
			}
		}
	}
	for _, obj := range []string{"tp", "fentry", "kprobe"} {
		var dead []string
		for name := range specs[obj].Programs {
			if !listed[obj][name] {
				dead = append(dead, name)
			}
		}
		sort.Strings(dead)
		if len(dead) > 0 {
			t.Errorf("programs of object %s that no tier attaches: %v", obj, dead)
		}
	}
	if _, ok := specs["iter"].Programs["iter_listeners"]; !ok {
		t.Error("no program iter_listeners in object iter")
	}
}

// A signature synq does not know fails the tier with the reason.
func TestHooksUnknownSignature(t *testing.T) {
	f := featureSets()[0]
	f.acceptArgs = 3
	if _, err := TierFentry.hooks(f); err == nil {
		t.Error("fentry tier accepted inet_csk_accept with 3 parameters")
	}
	f.acceptArgs = 0
	if _, err := TierFentry.hooks(f); err == nil {
		t.Error("fentry tier accepted a kernel without inet_csk_accept in BTF")
	}
}
