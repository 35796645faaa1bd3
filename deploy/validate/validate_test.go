package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const manifests = "../kubernetes"

// The manifests as committed: strict decoding, the policy, and flags that
// `synq serve` really has.
func TestManifests(t *testing.T) {
	objs, err := Load(manifests)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	for _, k := range []string{"v1/Namespace", "v1/ServiceAccount", "v1/Service", "apps/v1/DaemonSet", "monitoring.coreos.com/v1/PodMonitor",
		"monitoring.coreos.com/v1/PrometheusRule"} {
		if kinds[k] != 1 {
			t.Errorf("%d %s, want 1", kinds[k], k)
		}
	}
	p := DefaultPolicy
	p.ServeFlags = serveFlags(t)
	for _, err := range Check(objs, p) {
		t.Error(err)
	}
}

// serveFlags builds synq from the enclosing module and reads the flags of
// `synq serve --help`; nil (no flag check) where it cannot.
func serveFlags(t *testing.T) []string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "synq")); err != nil {
		t.Logf("no synq source at %s: flags not checked", root)
		return nil
	}
	bin := filepath.Join(t.TempDir(), "synq")
	build := exec.Command("go", "build", "-o", bin, "./cmd/synq")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build synq: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Logf("synq serve --help: %v (%s): flags not checked", err, strings.TrimSpace(string(out)))
		return nil
	}
	flags := FlagsFromHelp(out)
	if len(flags) == 0 {
		t.Fatalf("no flags in synq serve --help:\n%s", out)
	}
	return flags
}

// write puts documents in a temporary manifest directory.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Strict decoding: a misspelt or unknown field, a duplicate key or a kind
// that is not expected fails, with the file named.
func TestStrictDecoding(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt": "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: synq, namespace: synq}\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"unknown":  "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: synq, namespace: synq}\nautomountToken: false\n",
		"duplicate": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: synq, namespace: synq}\n" +
			"automountServiceAccountToken: false\nautomountServiceAccountToken: true\n",
		"wrong type": "apiVersion: v1\nkind: Service\nmetadata: {name: synq, namespace: synq}\nspec: {ports: [{port: metrics}]}\n",
		"kind":       "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: synq}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(write(t, map[string]string{"x.yaml": doc}))
			t.Logf("%v", err)
			if err == nil || !strings.Contains(err.Error(), "x.yaml") {
				t.Errorf("Load accepted it (err %v)", err)
			}
		})
	}
	objs, err := Load(write(t, map[string]string{"two.yaml": "# comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: synq}\n---\n" +
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: synq, namespace: synq}\n"}))
	if err != nil || len(objs) != 2 {
		t.Errorf("multi-document file: %d objects, %v", len(objs), err)
	}
}

// The policy catches what a careless edit of the DaemonSet would do.
func TestPolicy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(manifests, "20-daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ds := string(b)
	others := map[string]string{}
	for _, f := range []string{"00-namespace.yaml", "10-serviceaccount.yaml", "30-service.yaml", "40-podmonitor.yaml"} {
		b, err := os.ReadFile(filepath.Join(manifests, f))
		if err != nil {
			t.Fatal(err)
		}
		others[f] = string(b)
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"privileged", "privileged: false", "privileged: true", "privileged"},
		{"extra capability", "                - SYS_RESOURCE\n", "                - SYS_RESOURCE\n                - NET_RAW\n", "capability NET_RAW"},
		{"missing capability", "                - PERFMON\n", "", "capability PERFMON missing"},
		{"writable host path", "              mountPath: /sys/kernel/btf\n              readOnly: true", "              mountPath: /sys/kernel/btf\n              readOnly: false", "mounted writable"},
		{"no propagation", "              mountPropagation: HostToContainer\n", "", "HostToContainer"},
		{"selector", "      labels:\n        app.kubernetes.io/name: synq\n        app.kubernetes.io/component: agent\n    spec:",
			"      labels:\n        app.kubernetes.io/name: synq-agent\n        app.kubernetes.io/component: agent\n    spec:", "does not match"},
		{"listen port", "--web.listen-address=$(NODE_IP):9464", "--web.listen-address=$(NODE_IP):9465", "no declared container port"},
		{"listen env", "--web.listen-address=$(NODE_IP):9464", "--web.listen-address=$(POD_IP):9464", "$(POD_IP)"},
		{"listen alias", "--web.listen-address=$(NODE_IP):9464", "--listen=$(NODE_IP):9465", "no declared container port"},
		{"probe path", "path: /healthz", "path: /health", "want /healthz"},
		{"runtime socket file", "            path: /run/containerd\n            type: DirectoryOrCreate", "            path: /run/containerd/containerd.sock\n            type: Socket", "broader than synq needs"},
		{"runtime dir required", "            path: /run/crio\n            type: DirectoryOrCreate", "            path: /run/crio\n            type: Directory", "must be DirectoryOrCreate"},
		{"writable runtime dir", "              mountPath: /run/crio\n              readOnly: true", "              mountPath: /run/crio\n              readOnly: false", "mounted writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(ds, c.old) {
				t.Fatalf("the DaemonSet no longer contains %q: update this test", c.old)
			}
			files := map[string]string{"20-daemonset.yaml": strings.Replace(ds, c.old, c.new, 1)}
			for k, v := range others {
				files[k] = v
			}
			objs, err := Load(write(t, files))
			if err != nil {
				t.Fatal(err)
			}
			errs := Check(objs, DefaultPolicy)
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), c.want) {
				t.Errorf("Check did not object with %q; it said %q", c.want, all)
			}
		})
	}
}

func TestFlagsFromHelp(t *testing.T) {
	help := "NAME:\n   synq serve - export ... see --netns\n\nOPTIONS:\n   --netns value  only this netns\n   --web.listen-address value, --listen value  address, see --netns (default: \"127.0.0.1:9464\")\n   --verbose, -v  report\n   --help, -h  show help\n"
	got := strings.Join(FlagsFromHelp([]byte(help)), " ")
	if got != "netns web.listen-address listen verbose help" {
		t.Errorf("FlagsFromHelp = %q", got)
	}
}
