package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// certReloadCheck is how often, at most, the certificate files are checked
// for changes during handshakes.
const certReloadCheck = time.Second

// certReloader serves the certificate in certFile/keyFile and reloads it
// when either file changes, so a renewed certificate (cert-manager,
// certbot) takes effect without a restart. A pair that fails to load keeps
// the previous one in service.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads the pair; the caller holds mu or is the constructor.
func (r *certReloader) load() error {
	certMod, keyMod, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	r.cert, r.certMod, r.keyMod = &cert, certMod, keyMod
	return nil
}

func (r *certReloader) modTimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return cert, key, err
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return cert, key, err
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastCheck) >= certReloadCheck {
		r.lastCheck = now
		certMod, keyMod, err := r.modTimes()
		if err == nil && (!certMod.Equal(r.certMod) || !keyMod.Equal(r.keyMod)) {
			if err := r.load(); err != nil {
				r.log.Warn("TLS certificate changed but does not load; keeping the previous one", "err", err)
			} else {
				r.log.Info("TLS certificate reloaded", "file", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// tlsConfig serves TLS 1.2 and later only.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}

// hstsValue asks browsers to use only HTTPS for a year (RFC 6797 §6.1);
// subdomains are left alone, as gatehouse cannot know what they serve.
const hstsValue = "max-age=31536000"

// strictTransportSecurity adds Strict-Transport-Security to every answer
// when gatehouse serves TLS itself (RFC 6797 §7.1: only over secure
// transport; behind a TLS-terminating proxy, the proxy sends it).
func strictTransportSecurity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsValue)
		next.ServeHTTP(w, r)
	})
}
