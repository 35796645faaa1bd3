package command

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// webConfig is serve's --web.config.file, the exporter-toolkit web
// configuration every Prometheus exporter reads: TLS (with client
// certificates) and basic auth. The file is read again on every connection,
// so certificates can be rotated without a restart.
type webConfig struct {
	path string
	cfg  web.Config
}

// WebConfig is how serve serves /metrics with the exporter-toolkit web
// configuration at path ("": plain HTTP); the toolkit's warnings and errors
// go to stderr. The file is validated now: the error, one line, is bad input
// (exit 2) rather than a failure on the first scrape.
func WebConfig(path string, stderr io.Writer) (WebServing, error) {
	w, err := loadWebConfig(path)
	if err != nil {
		return WebServing{}, err
	}
	return WebServing{Protected: w.protected(), Scheme: w.scheme(), Describe: w.describe(),
		Serve: func(srv *http.Server, ln net.Listener) error { return w.serve(srv, ln, stderr) }}, nil
}

func loadWebConfig(path string) (*webConfig, error) {
	w := &webConfig{path: path}
	if path == "" {
		return w, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("invalid --web.config.file %s: %v", path, err)
	}
	if err := web.Validate(path); err != nil {
		return nil, fmt.Errorf("invalid --web.config.file %s: %s", path, oneLineErr(err))
	}
	if err := yaml.Unmarshal(b, &w.cfg); err != nil {
		return nil, fmt.Errorf("invalid --web.config.file %s: %s", path, oneLineErr(err))
	}
	return w, nil
}

// oneLineErr joins a multi-line error (YAML lists every field) into one line.
func oneLineErr(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), ":\n", ":")), " ")
}

func (w *webConfig) tls() bool { return w.path != "" && w.cfg.TLSConfig.IsEnabled() }

func (w *webConfig) auth() bool { return len(w.cfg.Users) > 0 }

// protected: the network cannot read /metrics without a password or a
// client certificate, or at least not in clear text.
func (w *webConfig) protected() bool { return w.tls() || w.auth() }

func (w *webConfig) scheme() string {
	if w.tls() {
		return "https"
	}
	return "http"
}

func (w *webConfig) describe() string {
	switch {
	case w.tls() && w.auth():
		return " with TLS and basic auth"
	case w.tls():
		return " with TLS"
	case w.auth():
		return " with basic auth"
	}
	return ""
}

// serve runs srv on ln as exporter-toolkit configures it; the toolkit's
// informational logs are left out, its warnings and errors go to stderr.
func (w *webConfig) serve(srv *http.Server, ln net.Listener, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	path := w.path
	return web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &path}, logger)
}
