package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The Kubernetes version the chart is rendered for (helm built from source defaults to an old one).
const (
	kubeVersion = "1.33.0"
	chartDir    = "../fieldseal"
	serverUID   = 65532
)

// helmBin is FIELDSEAL_HELM, or the helm scripts/test-deps.sh builds from the pin in ../helm-version.
func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FIELDSEAL_HELM")
	if bin == "" {
		version, err := os.ReadFile("../helm-version")
		if err != nil {
			t.Fatal(err)
		}
		bin = "../../../.tools/bin/helm-" + strings.TrimSpace(string(version))
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s: run bash scripts/test-deps.sh (%v)", bin, err)
	}
	return bin
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// combinations are the documented values files, one per combination (README.md "Values combinations").
func combinations(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("expected at least 5 values files under %s/ci, found %d (%v)", chartDir, len(files), err)
	}
	return files
}

func TestLintStrict(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, values := range combinations(t) {
		if out, err := helm(t, "lint", "--strict", chartDir, "-f", values); err != nil {
			t.Errorf("%s: %v\n%s", values, err, out)
		}
	}
}

// rendered holds one combination's objects, decoded strictly into their API types.
type rendered struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	accounts    []*corev1.ServiceAccount
	secrets     []*corev1.Secret
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	policies    []*networkingv1.NetworkPolicy
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits helm's output into documents and decodes each into the k8s.io/api type for its
// apiVersion and kind, refusing unknown and duplicate fields (sigs.k8s.io/yaml.UnmarshalStrict).
func decode(t *testing.T, manifest string) rendered {
	t.Helper()
	var r rendered
	for _, doc := range docSeparator.Split(manifest, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("a rendered document is not YAML: %v\n%s", err, doc)
		}
		var target any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			r.deployments, target = append(r.deployments, o), o
		case "v1 Service":
			o := &corev1.Service{}
			r.services, target = append(r.services, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			r.accounts, target = append(r.accounts, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			r.secrets, target = append(r.secrets, o), o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			r.hpas, target = append(r.hpas, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			r.pdbs, target = append(r.pdbs, o), o
		case "networking.k8s.io/v1 NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			r.policies, target = append(r.policies, o), o
		default:
			t.Fatalf("unexpected object %s %s in the chart's output", meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", meta.APIVersion, meta.Kind, err, doc)
		}
	}
	return r
}

func stripComments(doc string) string {
	var keep []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// values is the chart's values.yaml with one combination's file merged over it, as helm merges them.
func values(t *testing.T, file string) map[string]any {
	t.Helper()
	read := func(path string) map[string]any {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(text, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return m
	}
	return merge(read(filepath.Join(chartDir, "values.yaml")), read(file))
}

func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x != ""
	case nil:
		return false
	default:
		return true
	}
}

func TestEveryCombinationRendersValidObjects(t *testing.T) {
	for _, file := range combinations(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			manifest, err := helm(t, "template", "fs", chartDir, "-f", file, "--namespace", "fieldseal", "--kube-version", kubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, manifest)
			checkInvariants(t, r, values(t, file))
		})
	}
}

func checkInvariants(t *testing.T, r rendered, v map[string]any) {
	t.Helper()
	tls := truthy(lookup(v, "tls.enabled"))
	local := lookup(v, "keyStore.kind") == "local"
	hpa := truthy(lookup(v, "autoscaling.enabled"))

	if len(r.deployments) != 1 || len(r.services) != 1 {
		t.Fatalf("want one Deployment and one Service, got %d and %d", len(r.deployments), len(r.services))
	}
	d := r.deployments[0]
	pod := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	// The pod: non-root, numeric user, RuntimeDefault seccomp, no API token.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != serverUID {
		t.Errorf("pod securityContext must run as non-root UID %d: %+v", serverUID, psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile must be RuntimeDefault")
	}
	// The default "Always" adds group rw to the key volume on every mount, which the local store refuses.
	if psc == nil || psc.FSGroupChangePolicy == nil || *psc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("pod fsGroupChangePolicy must be OnRootMismatch")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the pod must not mount a Kubernetes API token")
	}
	// Every container: read-only root, no privilege escalation, no capabilities.
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
		}
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("container %s: runAsNonRoot must be true", c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: needs a memory limit", c.Name)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("the server container needs cpu and memory requests")
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 7070 || c.Ports[0].Name != "service" {
		t.Fatalf("the server container must expose port 7070 named service: %+v", c.Ports)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s is set twice", e.Name)
		}
		env[e.Name] = e.Value
	}
	if env["FIELDSEAL_HOST"] != lookup(v, "listenAddress") || env["FIELDSEAL_PORT"] != "7070" || env["FIELDSEAL_CONFIG"] == "" {
		t.Errorf("env must listen on listenAddress (%v) port 7070 and name the config file: %v", lookup(v, "listenAddress"), env)
	}
	if env["FIELDSEAL_KEY_STORE"] != lookup(v, "keyStore.kind") {
		t.Errorf("FIELDSEAL_KEY_STORE = %q, values say %v", env["FIELDSEAL_KEY_STORE"], lookup(v, "keyStore.kind"))
	}

	// Probes: readiness on grpc.health.v1 (cleartext) or HTTPS /readyz (TLS), liveness on /healthz.
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	if rp == nil || lp == nil || c.StartupProbe == nil {
		t.Fatalf("readiness, liveness and startup probes are required")
	}
	if tls {
		if rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("with TLS, readiness must be HTTPS GET /readyz: %+v", rp.ProbeHandler)
		}
	} else if rp.GRPC == nil || rp.GRPC.Port != 7070 || (rp.GRPC.Service != nil && *rp.GRPC.Service != "") {
		t.Errorf("without TLS, readiness must be the gRPC health check on 7070: %+v", rp.ProbeHandler)
	}
	wantScheme := map[bool]corev1.URIScheme{true: corev1.URISchemeHTTPS, false: corev1.URISchemeHTTP}[tls]
	if lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Scheme != wantScheme {
		t.Errorf("liveness must be %s GET /healthz: %+v", wantScheme, lp.ProbeHandler)
	}
	// Probe timeouts above the kubelet's default of 1 s (a busy event loop answers late, and a restart
	// under load moves the load elsewhere); the startup probe allows startupTimeoutSeconds.
	for name, p := range map[string]*corev1.Probe{"readiness": rp, "liveness": lp, "startup": c.StartupProbe} {
		if p.TimeoutSeconds < 2 {
			t.Errorf("%s probe: timeoutSeconds %d, want 2 or more", name, p.TimeoutSeconds)
		}
	}
	if want, ok := lookup(v, "startupTimeoutSeconds").(float64); !ok || float64(c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold) < want {
		t.Errorf("the startup probe allows %d s, want startupTimeoutSeconds (%v)", c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold, lookup(v, "startupTimeoutSeconds"))
	}
	grace := int64(0)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	// The kubelet counts the grace from the start of preStop; after the drain the server waits for a key
	// store call under way (3 attempts of 5 s, plus backoff: 16 s) before it exits.
	const storeCallSeconds = 16
	sleep := int64(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		sleep = c.Lifecycle.PreStop.Sleep.Seconds
	}
	if sleep < 1 {
		t.Errorf("the container needs a preStop sleep of at least 1 s")
	}
	if env["FIELDSEAL_SHUTDOWN_GRACE_MS"] == "" || grace*1000 < sleep*1000+atoi(t, env["FIELDSEAL_SHUTDOWN_GRACE_MS"])+storeCallSeconds*1000 {
		t.Errorf("terminationGracePeriodSeconds %d must cover preStop %d s + FIELDSEAL_SHUTDOWN_GRACE_MS %s + one store call (%d s)", grace, sleep, env["FIELDSEAL_SHUTDOWN_GRACE_MS"], storeCallSeconds)
	}

	// Volumes: the config Secret is group-readable only, its copy lives in memory; a data volume exactly
	// with the local key store; TLS from its Secret exactly when TLS is on.
	volumes := map[string]corev1.Volume{}
	for _, vol := range pod.Volumes {
		volumes[vol.Name] = vol
		if vol.HostPath != nil {
			t.Errorf("volume %s mounts a path of the node", vol.Name)
		}
	}
	if len(volumes) != len(pod.Volumes) {
		t.Errorf("two volumes share a name")
	}
	cs, ok := volumes["config-secret"]
	if !ok || cs.Secret == nil || cs.Secret.DefaultMode == nil || *cs.Secret.DefaultMode != 0o440 {
		t.Errorf("config-secret must be a Secret volume with defaultMode 0440: %+v", cs)
	}
	if cfg, ok := volumes["config"]; !ok || cfg.EmptyDir == nil || cfg.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("the config copy must be a memory emptyDir")
	}
	if _, ok := volumes["data"]; ok != local {
		t.Errorf("a data volume exists = %v, want %v (local key store)", ok, local)
	}
	if tv, ok := volumes["tls"]; ok != tls || (tls && (tv.Secret == nil || tv.Secret.SecretName != lookup(v, "tls.secretName"))) {
		t.Errorf("the TLS volume must come from tls.secretName exactly when TLS is on")
	}
	if tls && (env["FIELDSEAL_TLS_CERT_FILE"] == "" || env["FIELDSEAL_TLS_KEY_FILE"] == "") {
		t.Errorf("with TLS, the certificate and key files must be configured")
	}
	// The environment wins over config.json, so this keeps a config file from requiring client
	// certificates that the kubelet's HTTPS probes cannot present.
	if tls && env["FIELDSEAL_TLS_REQUIRE_CLIENT_CERT"] != "false" {
		t.Errorf("with TLS, FIELDSEAL_TLS_REQUIRE_CLIENT_CERT must be \"false\" (the probes present no certificate): %q", env["FIELDSEAL_TLS_REQUIRE_CLIENT_CERT"])
	}
	if ca := lookup(v, "tls.clientCaKey"); tls && truthy(ca) && env["FIELDSEAL_TLS_CLIENT_CA_FILE"] != "/etc/fieldseal/tls/"+ca.(string) {
		t.Errorf("with tls.clientCaKey, FIELDSEAL_TLS_CLIENT_CA_FILE must name it: %q", env["FIELDSEAL_TLS_CLIENT_CA_FILE"])
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volumeMount %s has no volume", m.Name)
		}
		if !m.ReadOnly && m.Name != "data" {
			t.Errorf("only the local key store's data volume may be writable, %s is not read-only", m.Name)
		}
	}

	// Replicas spread over nodes by default: a constraint on the hostname that selects the pods.
	if len(lookup(v, "topologySpreadConstraints").([]any)) == 0 {
		spread := false
		for _, tsc := range pod.TopologySpreadConstraints {
			if tsc.TopologyKey == "kubernetes.io/hostname" && tsc.LabelSelector != nil && labels.SelectorFromSet(tsc.LabelSelector.MatchLabels).Matches(podLabels) {
				spread = true
			}
		}
		if !spread {
			t.Errorf("the pods must spread over nodes by default: %+v", pod.TopologySpreadConstraints)
		}
	}

	// The local key store: one pod at a time on its volume.
	if local {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("the local key store needs replicas 1 and the Recreate strategy")
		}
		if len(r.hpas) != 0 || len(r.pdbs) != 0 {
			t.Errorf("the local key store renders no HorizontalPodAutoscaler and no PodDisruptionBudget")
		}
	}

	// Service: h2c (or https with TLS) to the container's named port, selecting the pods.
	svc := r.services[0]
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("the Service selector %v does not select the pods %v", svc.Spec.Selector, podLabels)
	}
	wantApp := map[bool]string{true: "https", false: "kubernetes.io/h2c"}[tls]
	for _, p := range svc.Spec.Ports {
		if p.AppProtocol == nil || *p.AppProtocol != wantApp {
			t.Errorf("Service port %s: appProtocol must be %s", p.Name, wantApp)
		}
		if p.TargetPort.StrVal != "service" {
			t.Errorf("Service port %s must target the container port named service", p.Name)
		}
	}

	// ServiceAccount with the IRSA annotation when a role is set.
	if truthy(lookup(v, "serviceAccount.create")) {
		if len(r.accounts) != 1 || r.accounts[0].Name != pod.ServiceAccountName {
			t.Fatalf("want the ServiceAccount the pod names (%s)", pod.ServiceAccountName)
		}
		role := lookup(v, "serviceAccount.irsaRoleArn")
		if got := r.accounts[0].Annotations["eks.amazonaws.com/role-arn"]; truthy(role) && got != role {
			t.Errorf("IRSA annotation = %q, want %v", got, role)
		} else if !truthy(role) && got != "" {
			t.Errorf("IRSA annotation set without serviceAccount.irsaRoleArn")
		}
	}

	// Config Secret: made by the chart unless an existing one is named, and then the pod uses that one.
	existing := lookup(v, "config.existingSecret")
	if truthy(existing) {
		if len(r.secrets) != 0 || cs.Secret == nil || cs.Secret.SecretName != existing {
			t.Errorf("with config.existingSecret the chart makes no Secret and mounts %v", existing)
		}
	} else if len(r.secrets) != 1 || cs.Secret == nil || cs.Secret.SecretName != r.secrets[0].Name || len(r.secrets[0].Data["config.json"]) == 0 {
		t.Errorf("the chart's config Secret must hold config.json and be the one mounted")
	}

	// HorizontalPodAutoscaler on the Deployment; replicas left to it.
	if hpa {
		if len(r.hpas) != 1 {
			t.Fatalf("autoscaling.enabled renders one HorizontalPodAutoscaler, got %d", len(r.hpas))
		}
		h := r.hpas[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("the HorizontalPodAutoscaler must scale the Deployment within min <= max on a metric: %+v", h.Spec)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("with autoscaling the Deployment must leave replicas to the autoscaler")
		}
	} else if len(r.hpas) != 0 {
		t.Errorf("autoscaling off renders no HorizontalPodAutoscaler")
	}

	// PodDisruptionBudget selecting the pods.
	if wantPDB := truthy(lookup(v, "podDisruptionBudget.enabled")) && !local; len(r.pdbs) != map[bool]int{true: 1, false: 0}[wantPDB] {
		t.Errorf("PodDisruptionBudgets: got %d, want one exactly when enabled with the aws key store", len(r.pdbs))
	}
	for _, p := range r.pdbs {
		sel := p.Spec.Selector
		if sel == nil || !labels.SelectorFromSet(sel.MatchLabels).Matches(podLabels) || (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			t.Errorf("the PodDisruptionBudget must select the pods and set one of maxUnavailable/minAvailable")
		}
	}

	// NetworkPolicy: the pods, ingress only to the service port, egress only DNS and HTTPS.
	if truthy(lookup(v, "networkPolicy.enabled")) != (len(r.policies) == 1) {
		t.Errorf("NetworkPolicies: got %d, want one exactly when networkPolicy.enabled", len(r.policies))
	}
	for _, np := range r.policies {
		if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(podLabels) {
			t.Errorf("the NetworkPolicy must select the pods")
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("the NetworkPolicy must restrict both ingress and egress")
		}
		for _, in := range np.Spec.Ingress {
			if len(in.Ports) != 1 || in.Ports[0].Port == nil || in.Ports[0].Port.StrVal != "service" || len(in.From) == 0 {
				t.Errorf("ingress rules must name peers and only the service port: %+v", in)
			}
		}
		var ports []string
		for _, out := range np.Spec.Egress {
			for _, p := range out.Ports {
				ports = append(ports, fmt.Sprintf("%s/%d", *p.Protocol, p.Port.IntVal))
			}
		}
		slices.Sort(ports)
		if !slices.Equal(ports, []string{"TCP/443", "TCP/53", "UDP/53"}) {
			t.Errorf("egress must allow DNS (53 UDP and TCP) and HTTPS (443) only, got %v", ports)
		}
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// Values combinations that cannot work are refused at render time with a message that says why.
func TestRefusesCombinationsThatCannotWork(t *testing.T) {
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"local store with autoscaling", []string{"keyStore.kind=local", "replicaCount=1"}, "autoscaling.enabled=false"},
		{"local store with two replicas", []string{"keyStore.kind=local", "autoscaling.enabled=false", "replicaCount=2"}, "replicaCount=1"},
		{"unknown key store", []string{"keyStore.kind=vault"}, "at '/keyStore/kind': value must be one of 'aws', 'local'"},
		{"unknown key store, schema skipped", []string{"keyStore.kind=vault", "--skip-schema-validation"}, "keyStore.kind must be aws or local"},
		{"a misspelt key", []string{"autoscalling.enabled=false"}, "additional properties 'autoscalling' not allowed"},
		{"a replica count that is not a number", []string{"replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{"an IRSA role that is not a role ARN", []string{"serviceAccount.irsaRoleArn=fieldseal"}, "at '/serviceAccount/irsaRoleArn'"},
		{"an env name that is not a variable name", []string{"env.log-level=debug"}, "invalid propertyName 'log-level'"},
		{"TLS without a Secret", []string{"tls.enabled=true"}, "tls.secretName"},
		{"a chart-owned setting in env", []string{"env.FIELDSEAL_HOST=127.0.0.1"}, "env.FIELDSEAL_HOST is set by the chart"},
		{"a startup budget too short for a key store call", []string{"startupTimeoutSeconds=5"}, "at '/startupTimeoutSeconds'"},
		{"autoscaling min above max", []string{"autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"}, "minReplicas must not exceed"},
		// Attacks on the chart's promises: each of these rendered before, and each would deploy something
		// other than what the values claim.
		{"a role ARN smuggled past the ARN check as an annotation", []string{`serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::999999999999:role/admin`}, "set the role with serviceAccount.irsaRoleArn"},
		{"a role ARN annotation beside irsaRoleArn (a duplicate key)", []string{"serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/fieldseal", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::999999999999:role/admin`}, "eks.amazonaws.com/role-arn"},
		{"an IRSA role on a ServiceAccount the chart does not create", []string{"serviceAccount.create=false", "serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/fieldseal"}, "needs serviceAccount.create=true"},
		{"the Cognigy API key in env (clear text in the Deployment)", []string{"env.FIELDSEAL_COGNIGY_API_KEY=k"}, "put it into the config Secret"},
		{"the Cognigy bearer token in env", []string{"env.FIELDSEAL_COGNIGY_BEARER_TOKEN=t"}, "put it into the config Secret"},
		{"static AWS credentials in env", []string{"env.AWS_SECRET_ACCESS_KEY=s"}, "give the pods an IAM role"},
		{"required client certificates, which the kubelet's probes cannot present", []string{"tls.enabled=true", "tls.secretName=t", "tls.clientCaKey=ca.crt", "env.FIELDSEAL_TLS_REQUIRE_CLIENT_CERT=true"}, "present no client certificate"},
		{"a pod label replacing a selector label", []string{"podLabels.app\\.kubernetes\\.io/instance=other"}, "select the pods by"},
		{"a pod annotation replacing the config checksum", []string{"podAnnotations.checksum/config=x"}, "chart's own"},
		{"a claim name that adds a hostPath volume (YAML injection)", []string{"keyStore.kind=local", "autoscaling.enabled=false", "replicaCount=1", "keyStore.local.existingClaim=keys\n        - name: host\n          hostPath:\n            path: /"}, "at '/keyStore/local/existingClaim'"},
		{"a claim name that adds a hostPath volume, schema skipped", []string{"keyStore.kind=local", "autoscaling.enabled=false", "replicaCount=1", "keyStore.local.existingClaim=keys\n        - name: host\n          hostPath:\n            path: /", "--skip-schema-validation"}, "keyStore.local.existingClaim must be a Kubernetes object name"},
		{"a TLS Secret name that adds structure, schema skipped", []string{"tls.enabled=true", "tls.secretName=t\n            defaultMode: 0777", "--skip-schema-validation"}, "tls.secretName must be a Kubernetes object name"},
		{"a config Secret name that is not a name", []string{"config.existingSecret=Config Secret"}, "at '/config/existingSecret'"},
		{"a full name that adds structure, schema skipped", []string{"fullnameOverride=fs\n  namespace: kube-system", "--skip-schema-validation"}, "fullnameOverride must be a Kubernetes object name"},
		{"a client CA key that is not a Secret key", []string{"tls.enabled=true", "tls.secretName=t", "tls.clientCaKey=../../etc/passwd"}, "at '/tls/clientCaKey'"},
		{"an env name that adds structure, schema skipped", []string{"env.X\n              valueFrom: {}=1", "--skip-schema-validation"}, "is not an environment variable name"},
		{"a Service type that adds structure, schema skipped", []string{"service.type=ClusterIP\n  externalIPs: [203.0.113.9]", "--skip-schema-validation"}, "service.type must be"},
		{"autoscaling on CPU without a CPU request", []string{"resources.requests=null"}, "needs resources.requests.cpu"},
		{"a listen address that is not a wildcard", []string{"listenAddress=10.0.0.1"}, "at '/listenAddress'"},
		{"a disruption budget over one autoscaled pod", []string{"autoscaling.minReplicas=1"}, "as few as 1 pod"},
		{"a disruption budget over one fixed pod", []string{"autoscaling.enabled=false", "replicaCount=1"}, "as few as 1 pod"},
		{"a disruption budget that blocks every drain", []string{"podDisruptionBudget.maxUnavailable=0"}, "at '/podDisruptionBudget/maxUnavailable'"},
		{"a disruption budget that blocks every drain, schema skipped", []string{"podDisruptionBudget.maxUnavailable=0", "--skip-schema-validation"}, "lets no pod be evicted"},
		{"a disruption budget of 0%", []string{"podDisruptionBudget.maxUnavailable=0%"}, "at '/podDisruptionBudget/maxUnavailable'"},
		{"a disruption budget that lets every pod go at once", []string{"autoscaling.minReplicas=2", "podDisruptionBudget.maxUnavailable=2"}, "evict all of as few as 2 pods"},
		{"a disruption budget of a percentage that lets every pod go at once", []string{"autoscaling.minReplicas=2", "podDisruptionBudget.maxUnavailable=51%"}, "evict all of as few as 2 pods"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "fs", chartDir, "--kube-version", kubeVersion}
			for _, s := range tc.set {
				if strings.HasPrefix(s, "--") {
					args = append(args, s)
				} else {
					args = append(args, "--set", s)
				}
			}
			out, err := helm(t, args...)
			if err == nil {
				t.Fatalf("rendered, want a refusal mentioning %q", tc.want)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("refusal does not mention %q:\n%s", tc.want, out)
			}
		})
	}
}
