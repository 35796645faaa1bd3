package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synq-trace/synq/internal/kerneltest"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// writeTemp writes a file in a temporary directory and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into
// dir, and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "synq test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "synq.crt"), filepath.Join(dir, "synq.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// #17: serve with exporter-toolkit's web config (TLS and basic auth),
// scraped by the real Prometheus over TLS with the right password (up 1,
// synq's series stored), and with a wrong one (up 0: refused); plain HTTP
// and a wrong password get nothing from /metrics.
func TestKernelServeTLSBasicAuth(t *testing.T) {
	kerneltest.Root(t)
	promBin := prometheusBinary(t)
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	webCfg := writeTemp(t, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
basic_auth_users:
  prometheus: %s
`, certFile, keyFile, bcryptHash(t, "right-password")))

	target := startServe(t, "--web.config.file", webCfg)
	job := func(name, password string) string {
		return fmt.Sprintf(`  - job_name: %s
    scheme: https
    tls_config:
      ca_file: %s
    basic_auth:
      username: prometheus
      password: %s
    static_configs:
      - targets: [%q]
`, name, certFile, password, target)
	}
	base := startPrometheusWith(t, promBin, job("synq", "right-password")+job("intruder", "wrong-password"))

	waitQuery(t, base, `up{job="synq"}`, 15*time.Second, func(v float64) bool { return v == 1 })
	waitQuery(t, base, `up{job="intruder"}`, 15*time.Second, func(v float64) bool { return v == 0 })
	if v, ok := promQuery(t, base, `count(synq_build_info{job="synq"})`); !ok || v != 1 {
		t.Errorf("synq_build_info over TLS: %v (found %v)", v, ok)
	}
	if _, ok := promQuery(t, base, `synq_build_info{job="intruder"}`); ok {
		t.Errorf("the job with a wrong password stored synq's series")
	}

	// The same by hand: TLS with the certificate as the only CA.
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, c := range []struct {
		user, password string
		code           int
	}{
		{"prometheus", "right-password", 200},
		{"prometheus", "wrong-password", 401},
		{"", "", 401},
	} {
		req, _ := http.NewRequest("GET", "https://"+target+"/metrics", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.code != 200) == strings.Contains(string(body), "synq_build_info") {
			t.Errorf("%s:%s: %d, want %d", c.user, c.password, resp.StatusCode, c.code)
		}
	}
	// Plain HTTP on the TLS port is no scrape.
	if resp, err := http.Get("http://" + target + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "synq_build_info") {
			t.Errorf("plain HTTP got the metrics: %d", resp.StatusCode)
		}
	}
}
