package identity

import "testing"

const (
	hexID = "4f3c1c5a0e8a2b6c9d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"
	uid   = "0c3f5e2a-9b1d-4e7f-8a6c-2d4b6f8a0c1e"
	uidU  = "0c3f5e2a_9b1d_4e7f_8a6c_2d4b6f8a0c1e" // as the systemd driver writes it
)

func TestFromCgroup(t *testing.T) {
	for _, c := range []struct {
		path string
		want Identity
	}{
		// systemd services, system and user
		{"/system.slice/nginx.service", Identity{Unit: "nginx.service"}},
		{"/system.slice/system-getty.slice/getty@tty1.service", Identity{Unit: "getty@tty1.service"}},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-web.service", Identity{Unit: "app-web.service"}},
		{"/user.slice/user-1000.slice/session-2.scope", Identity{Unit: "session-2.scope"}},
		{"/init.scope", Identity{Unit: "init.scope"}},
		{"/user.slice", Identity{}},
		{"/", Identity{}},
		{"", Identity{}},
		{"/process_api/4a6c906dbf7ccebaa5e67f4373602822", Identity{}},
		// docker: systemd and cgroupfs drivers; a unit inside a container is not the container's
		{"/system.slice/docker-" + hexID + ".scope", Identity{ContainerID: hexID, Runtime: "docker"}},
		{"/system.slice/docker-" + hexID + ".scope/system.slice/nginx.service", Identity{ContainerID: hexID, Runtime: "docker"}},
		{"/docker/" + hexID, Identity{ContainerID: hexID, Runtime: "docker"}},
		{"/docker/" + hexID[:63] + "g", Identity{}},
		// Kubernetes, systemd driver: containerd and CRI-O, every QoS class
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + hexID + ".scope",
			Identity{ContainerID: hexID, Runtime: "containerd", PodUID: uid}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + hexID + ".scope",
			Identity{ContainerID: hexID, Runtime: "cri-o", PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + hexID + ".scope/container",
			Identity{ContainerID: hexID, Runtime: "cri-o", PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + hexID + ".scope", Identity{PodUID: uid}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", Identity{PodUID: uid}},
		{"/kubepods.slice/kubepods-burstable.slice/docker-" + hexID + ".scope", Identity{ContainerID: hexID, Runtime: "docker"}},
		// Kubernetes, cgroupfs driver
		{"/kubepods/burstable/pod" + uid + "/" + hexID, Identity{ContainerID: hexID, PodUID: uid}},
		{"/kubepods/pod" + uid + "/" + hexID, Identity{ContainerID: hexID, PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid + "/crio-" + hexID, Identity{ContainerID: hexID, Runtime: "cri-o", PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid + "/" + hexID + "/nested", Identity{ContainerID: hexID, PodUID: uid}},
		{"/pod" + uid + "/" + hexID, Identity{ContainerID: hexID}}, // "pod..." outside kubepods is no pod
		// podman: root (machine.slice), rootless (user manager), cgroupfs; conmon is not the container
		{"/machine.slice/libpod-" + hexID + ".scope/container", Identity{ContainerID: hexID, Runtime: "podman"}},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + hexID + ".scope", Identity{ContainerID: hexID, Runtime: "podman"}},
		{"/machine.slice/libpod-conmon-" + hexID + ".scope", Identity{}},
		{"/libpod_parent/libpod-" + hexID, Identity{ContainerID: hexID, Runtime: "podman"}},
		{"/libpod_parent/" + hexID, Identity{ContainerID: hexID, Runtime: "podman"}},
		{"/libpod_parent/conmon", Identity{}},
		// LXC 4+ and before
		{"/lxc.payload.web1", Identity{ContainerID: "web1", Runtime: "lxc"}},
		{"/lxc.payload.web1/system.slice/nginx.service", Identity{ContainerID: "web1", Runtime: "lxc"}},
		{"/lxc.monitor.web1", Identity{}},
		{"/lxc/web1", Identity{ContainerID: "web1", Runtime: "lxc"}},
	} {
		if got := FromCgroup(c.path); got != c.want {
			t.Errorf("FromCgroup(%q)\n = %+v\nwant %+v", c.path, got, c.want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	for _, c := range []struct{ name, file, want string }{
		{"v2 unified", "0::/system.slice/nginx.service\n", "/system.slice/nginx.service"},
		{"v2 root", "0::/\n", "/"},
		{"hybrid, v2 root, v1 paths elsewhere",
			"9:name=systemd:/\n4:memory:/process_api/4a6c906dbf7ccebaa5e67f4373602822\n0::/\n", "/"},
		{"hybrid, v2 set", "9:name=systemd:/user.slice\n0::/synq-test\n", "/synq-test"},
		{"hybrid, systemd unit in both", "1:name=systemd:/system.slice/nginx.service\n0::/system.slice/nginx.service\n", "/system.slice/nginx.service"},
		{"hybrid, cgroupfs docker in v1 only (v2 stays dockerd's)",
			"4:memory:/docker/" + hexID + "\n1:name=systemd:/docker/" + hexID + "\n0::/system.slice/docker.service\n", "/docker/" + hexID},
		{"hybrid, kubepods in name=systemd only",
			"1:name=systemd:/kubepods/burstable/pod" + uid + "/" + hexID + "\n0::/\n", "/kubepods/burstable/pod" + uid + "/" + hexID},
		{"v1 only, systemd", "12:pids:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n", "/system.slice/sshd.service"},
		{"v1 docker cgroupfs, systemd root", "11:memory:/docker/" + hexID + "\n1:name=systemd:/\n", "/docker/" + hexID},
		{"garbage", "nonsense\n\n", ""},
		{"empty", "", ""},
	} {
		if got := ParseProcCgroup([]byte(c.file)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDisplay(t *testing.T) {
	for _, c := range []struct {
		id   Identity
		want string
	}{
		{Identity{Namespace: "shop", Pod: "web-1", Container: "nginx", PodUID: uid, ContainerID: hexID}, "shop/web-1/nginx"},
		{Identity{Container: "db", ContainerID: hexID, Runtime: "podman"}, "db"},
		{Identity{ContainerID: hexID, Runtime: "docker"}, "docker:" + hexID[:12]},
		{Identity{ContainerID: hexID, PodUID: uid}, "container:" + hexID[:12]},
		{Identity{PodUID: uid}, "pod " + uid},
		{Identity{Unit: "nginx.service"}, "nginx.service"},
		{Identity{}, ""},
	} {
		if got := c.id.Display(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.id, got, c.want)
		}
	}
}

func TestFilter(t *testing.T) {
	web := Identity{ContainerID: hexID, Runtime: "containerd", PodUID: uid, Pod: "web-0", Namespace: "shop", Container: "nginx"}
	svc := Identity{Unit: "nginx.service"}
	for _, c := range []struct {
		f        Filter
		web, svc bool
	}{
		{Filter{}, true, true},
		{Filter{Pod: "web-0"}, true, false},
		{Filter{Pod: "web"}, false, false},
		{Filter{Namespace: "shop"}, true, false},
		{Filter{Namespace: "shop", Pod: "web-1"}, false, false},
		{Filter{Container: "nginx"}, true, false},
		{Filter{Container: hexID[:12]}, true, false},
		{Filter{Container: "ngin"}, false, false},
		{Filter{Unit: "nginx"}, false, true},
		{Filter{Unit: "nginx.service"}, false, true},
		{Filter{Unit: "nginx.socket"}, false, false},
	} {
		if c.f.Match(web) != c.web || c.f.Match(svc) != c.svc {
			t.Errorf("%q: web %v svc %v, want %v %v", c.f, c.f.Match(web), c.f.Match(svc), c.web, c.svc)
		}
	}
	if s := (Filter{Pod: "a", Unit: "b"}).String(); s != "--pod a --unit b" {
		t.Errorf("String %q", s)
	}
}
