package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial to certFile/keyFile and returns it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "gatehouse test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write to temporary names and rename, as certificate managers do, so
	// the server never reads half a file.
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)

	env := testEnv(t)
	env["GATEHOUSE_TLS_CERT_FILE"], env["GATEHOUSE_TLS_KEY_FILE"] = certFile, keyFile
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenvFrom(env), strings.NewReader(""), &syncBuffer{}, stderr) }()
	var addr string
	eventually(t, 30*time.Second, "the server listens", func() bool {
		rec, ok := findLog(stderr.String(), "gatehouse listening")
		if ok {
			addr, _ = rec["addr"].(string)
			if rec["scheme"] != "https" || !strings.HasPrefix(rec["issuer"].(string), "https://") {
				t.Errorf("listening record %v, want https", rec)
			}
		}
		return ok
	})

	client := func(c *x509.Certificate, maxVersion uint16) *http.Client {
		p := x509.NewCertPool()
		p.AddCert(c)
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p, MaxVersion: maxVersion}}}
	}
	get := func(c *http.Client) (*http.Response, error) {
		resp, err := c.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	t.Run("serves_https", func(t *testing.T) {
		resp, err := get(client(first, 0))
		if err != nil || resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
			t.Fatalf("got %v %v", resp, err)
		}
		// RFC 6797 §7.1: served over TLS, answers carry HSTS.
		if got := resp.Header.Get("Strict-Transport-Security"); got != hstsValue {
			t.Errorf("rfc6797_7.1 Strict-Transport-Security = %q, want %q", got, hstsValue)
		}
		// Go's server answers plain HTTP on a TLS port with a 400.
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP got 200 on the TLS port")
			}
		}
	})
	t.Run("refuses_tls_1.1", func(t *testing.T) {
		if _, err := get(client(first, tls.VersionTLS11)); err == nil {
			t.Fatal("a TLS 1.1 client connected")
		}
	})
	t.Run("reloads_a_renewed_certificate", func(t *testing.T) {
		time.Sleep(certReloadCheck) // the reloader looks at most once per check interval
		second := writeCert(t, certFile, keyFile, 2)
		eventually(t, 10*time.Second, "the renewed certificate is served", func() bool {
			resp, err := get(client(second, 0))
			return err == nil && resp.TLS.PeerCertificates[0].SerialNumber.Int64() == 2
		})
	})
	t.Run("a_broken_renewal_keeps_the_old_certificate", func(t *testing.T) {
		if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(certReloadCheck + 100*time.Millisecond)
		resp, err := get(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}})
		if err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
			t.Fatalf("got %v %v, want the last good certificate", resp, err)
		}
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v", err)
	}
}
