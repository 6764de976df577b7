package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// The Kubernetes manifests say what the server understands: every
// GATEHOUSE_* variable is a setting (a typo would be ignored at start), the
// issuer is set (the image listens on every interface), /metrics has a
// port of its own that the Service does not route, and the probes use the
// health endpoints.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	read := func(name string, into any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	var deployment struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Ports []struct {
							Name          string `yaml:"name"`
							ContainerPort int    `yaml:"containerPort"`
						} `yaml:"ports"`
						Env []struct {
							Name  string `yaml:"name"`
							Value string `yaml:"value"`
						} `yaml:"env"`
						StartupProbe   probe `yaml:"startupProbe"`
						LivenessProbe  probe `yaml:"livenessProbe"`
						ReadinessProbe probe `yaml:"readinessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	read("deployment.yaml", &deployment)
	if len(deployment.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(deployment.Spec.Template.Spec.Containers))
	}
	c := deployment.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "GATEHOUSE_") && !knownSetting(e.Name) {
			t.Errorf("deployment.yaml sets %s, which is no setting", e.Name)
		}
	}
	if _, ok := env["GATEHOUSE_ISSUER"]; !ok {
		t.Error("deployment.yaml does not set GATEHOUSE_ISSUER (the image listens on 0.0.0.0)")
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["metrics"] == 0 || !strings.HasSuffix(env["GATEHOUSE_METRICS_ADDR"], ":"+strconv.Itoa(ports["metrics"])) {
		t.Errorf("ports %v, GATEHOUSE_METRICS_ADDR %q: want http 8080 and /metrics on the metrics port", ports, env["GATEHOUSE_METRICS_ADDR"])
	}
	for name, p := range map[string]probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p.HTTPGet.Path != want || p.HTTPGet.Port != "http" {
			t.Errorf("%s probe %+v, want %s on port http", name, p.HTTPGet, want)
		}
	}

	var service struct {
		Spec struct {
			Ports []struct {
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	read("service.yaml", &service)
	for _, p := range service.Spec.Ports {
		if p.TargetPort != "http" {
			t.Errorf("service.yaml routes port %q: only the API's port (http) belongs in the Service", p.TargetPort)
		}
	}
}
