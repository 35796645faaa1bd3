package doctor

import (
	"path/filepath"
	"strings"
)

// Server is a server program recognised from its executable and command
// line, with where its listen() backlog is set.
type Server struct {
	Name    string // "nginx", ... ; "" when not recognised
	Setting string // where the backlog is set, and its default
}

// servers, tried in order: the first whose executable (or argv[0], or
// comm) matches; gunicorn and uvicorn run as python and are told by their
// command line, so they come first.
var servers = []struct {
	name    string
	match   func(exe string, args []string) bool
	setting string
}{
	{"nginx", base("nginx"), "nginx: the backlog= parameter of the listen directive of this port (`listen PORT backlog=N;` in the server block; default 511), then `nginx -s reload`"},
	{"redis", base("redis-server"), "redis: `tcp-backlog N` in redis.conf (default 511), then restart redis"},
	{"haproxy", base("haproxy"), "HAProxy: `backlog N` in the frontend (or defaults) section (default: the frontend's maxconn), then reload"},
	{"envoy", base("envoy"), "Envoy: the listener's tcp_backlog_size (default 128)"},
	{"gunicorn", arg("gunicorn"), "gunicorn: `--backlog N` (or backlog = N in its config file; default 2048)"},
	{"uvicorn", arg("uvicorn"), "uvicorn: `--backlog N` (default 2048)"},
	{"node", base("node", "nodejs"), "Node.js: `server.listen({ port, backlog: N })` (default 511)"},
	{"java", base("java"), "Java: the backlog argument of `new ServerSocket(port, backlog)` or `ServerSocketChannel.bind(addr, backlog)` (default 50); Netty's ChannelOption.SO_BACKLOG; Tomcat's acceptCount (default 100)"},
	{"python", pythonExe, "Python: socketserver's `request_queue_size` (default 5), `sock.listen(N)`, or asyncio's `loop.create_server(..., backlog=N)` (default 100)"},
}

// goSetting: Go's net package passes net.core.somaxconn (read once, at
// the first listen) as the backlog.
const goSetting = "Go: the net package passes net.core.somaxconn (read once, when the program first listens); a smaller backlog was set by the program itself (syscall.Listen): raise it there"

func base(names ...string) func(string, []string) bool {
	return func(exe string, args []string) bool {
		for _, n := range names {
			if filepath.Base(exe) == n || (len(args) > 0 && filepath.Base(args[0]) == n) {
				return true
			}
		}
		return false
	}
}

func arg(name string) func(string, []string) bool {
	return func(_ string, args []string) bool {
		for i, a := range args {
			if i > 2 {
				break
			}
			if b := filepath.Base(a); b == name || strings.HasPrefix(b, name+":") {
				return true
			}
		}
		return false
	}
}

func pythonExe(exe string, args []string) bool {
	for _, s := range []string{exe, first(args)} {
		if strings.HasPrefix(filepath.Base(s), "python") {
			return true
		}
	}
	return false
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// SettingFor is the server's Setting with PORT and N (the backlog to set)
// filled in.
func (s Server) SettingFor(port uint16, n int64) string {
	return strings.NewReplacer("PORT", itoa(int64(port)), "backlog: N", "backlog: "+itoa(n), "backlog N", "backlog "+itoa(n),
		"backlog=N", "backlog="+itoa(n), "--backlog N", "--backlog "+itoa(n), "tcp-backlog N", "tcp-backlog "+itoa(n)).Replace(s.Setting)
}

// Recognize names the server p runs and where its backlog is set; an
// unknown program gets a Setting that says what to look for.
func Recognize(p *Proc) Server {
	if p == nil {
		return Server{Setting: "the backlog argument of its listen() call"}
	}
	exe := p.Exe
	if exe == "" {
		exe = p.Comm
	}
	for _, s := range servers {
		if s.match(exe, p.Cmdline) || s.match(p.Comm, nil) {
			return Server{Name: s.name, Setting: s.setting}
		}
	}
	if p.Go {
		return Server{Name: "go", Setting: goSetting}
	}
	return Server{Setting: "the backlog argument of its listen() call (look for a backlog setting in " + filepath.Base(exe) + "'s configuration)"}
}
