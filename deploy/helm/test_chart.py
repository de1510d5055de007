#!/usr/bin/env python3
"""Tests of the portcullis-gateway Helm chart: run `python3 deploy/helm/test_chart.py`.

No cluster is needed. The chart is rendered with deploy/helm/render (Go's
text/template + sprig, as `helm template` renders), built offline from Debian's
packages (golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev),
with several value sets; every document must parse as YAML, validate against
Kubernetes' schemas (kubernetes-validate, strict) and carry the expected
objects and fields. It also checks that the chart's README documents
exactly the keys of values.yaml, and that the committed plain manifests
(deploy/kubernetes/portcullis-gateway.yaml) equal a fresh render.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:  # pragma: no cover - a setup problem, not a test result
    sys.exit("PyYAML is missing: apt-get install python3-yaml (or pip install pyyaml)")
try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - a setup problem, not a test result
    sys.exit("kubernetes-validate is missing: python3 -m pip install kubernetes-validate")

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(HERE, "portcullis-gateway")
PLAIN = os.path.join(HERE, "..", "kubernetes", "portcullis-gateway.yaml")
BACKUP_DIR = "/var/lib/portcullis/backup"
TOKEN = "GatewayKey gw1&202612310000&c2lnbmF0dXJl"
BACKUP_KEY = "00" * 32
REDIS_PASSWORD = "s3cr%40t-redis-pw"
STORE_URL = "rediss://app:%s@redis.example:6380/2" % REDIS_PASSWORD
STORE_SETTINGS = ("PORTCULLIS_STORE_COUNTING", "PORTCULLIS_STORE_ON_FAILURE",
                  "PORTCULLIS_STORE_TIMEOUT_MS", "PORTCULLIS_STORE_SYNC_INTERVAL_MS")
RELEASE = "edge"
FULLNAME = "edge-portcullis-gateway"

# The minimum a render needs: a management URL and a token.
BASE = ["--set", "gateway.configuration.uri=https://mgmt.example:8090",
        "--set-string", "gateway.auth.key=" + TOKEN]

# Every rendered object is checked against Kubernetes' own OpenAPI schemas
# (strict: unknown fields fail), for the oldest version kubernetes-validate
# ships and its newest.
SCHEMA_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())

_work = None
_render_bin = None


def setUpModule():
    global _work, _render_bin
    if shutil.which("go") is None:
        raise RuntimeError(
            "go is missing: apt-get install golang-go golang-github-masterminds-sprig-dev "
            "golang-github-ghodss-yaml-dev")
    _work = tempfile.mkdtemp(prefix="portcullis-helm-test-")
    _render_bin = os.path.join(_work, "render")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
               GOCACHE=os.path.join(_work, "gocache"), GOFLAGS="")
    subprocess.run(["go", "build", "-o", _render_bin, "."], cwd=os.path.join(HERE, "render"),
                   env=env, check=True)


def tearDownModule():
    if _work:
        shutil.rmtree(_work, ignore_errors=True)


def run_render(*args):
    return subprocess.run([_render_bin, "--name", RELEASE, "--namespace", "gw", *args, CHART],
                          capture_output=True, text=True)


def render(*args):
    """Renders with BASE plus args; returns {(kind, name): object}."""
    done = run_render(*BASE, *args)
    if done.returncode != 0:
        raise AssertionError("render failed: " + done.stderr)
    return parse(done.stdout)


def parse(text):
    objects = {}
    docs = [d for d in re.split(r"(?m)^---\s*$", text) if d.strip()]
    for doc in docs:
        lines = [ln for ln in doc.strip().splitlines() if not ln.startswith("# ")]
        if not doc.strip().startswith("# Source: ") and lines:
            # Only the plain manifests' header may precede the first document.
            raise AssertionError("document without a # Source: line:\n" + doc)
        obj = yaml.safe_load(doc)
        if obj is None:
            continue
        for field in ("apiVersion", "kind", "metadata"):
            if field not in obj:
                raise AssertionError("document without %s:\n%s" % (field, doc))
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError("%s %s is not valid for Kubernetes %s: %s" % (
                    obj["kind"], obj["metadata"].get("name"), version, e)) from None
        key = (obj["kind"], obj["metadata"]["name"])
        if key in objects:
            raise AssertionError("duplicate object %s" % (key,))
        objects[key] = obj
    return objects


def render_error(*args):
    done = run_render(*args)
    if done.returncode == 0:
        raise AssertionError("render succeeded but should fail with " + repr(args))
    return done.stderr


def workload(objects):
    found = [o for (kind, _), o in objects.items() if kind in ("Deployment", "StatefulSet")]
    assert len(found) == 1, "expected one workload, got %d" % len(found)
    return found[0]


def container(objects):
    containers = workload(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(objects):
    return {e["name"]: e for e in container(objects)["env"]}


def kinds(objects):
    return sorted(kind for kind, _ in objects)


class Rendering(unittest.TestCase):
    def assertSecretRef(self, objects, env_name, secret, key):
        ref = env_of(objects)[env_name]["valueFrom"]["secretKeyRef"]
        self.assertEqual((ref["name"], ref["key"]), (secret, key))

    def test_defaults_alone_refuse_to_render_without_a_management_url(self):
        self.assertIn("gateway.configuration.uri", render_error())

    def test_a_token_is_required(self):
        err = render_error("--set", "gateway.configuration.uri=https://m:8090")
        self.assertIn("gateway.auth.key", err)

    def test_minimal_values_give_the_gateway_objects(self):
        objects = render()
        self.assertEqual(kinds(objects), ["Deployment", "Secret", "Service", "ServiceAccount"])
        dep = objects[("Deployment", FULLNAME)]
        pod = dep["spec"]["template"]
        self.assertEqual(dep["apiVersion"], "apps/v1")
        self.assertEqual(dep["spec"]["replicas"], 1)
        selector = dep["spec"]["selector"]["matchLabels"]
        self.assertEqual(selector, {"app.kubernetes.io/name": "portcullis-gateway",
                                    "app.kubernetes.io/instance": RELEASE})
        for k, v in selector.items():
            self.assertEqual(pod["metadata"]["labels"][k], v)
        for obj in objects.values():
            self.assertEqual(obj["metadata"]["labels"]["app.kubernetes.io/instance"], RELEASE)
            self.assertNotIn("namespace", obj["metadata"])

        svc = objects[("Service", FULLNAME)]
        self.assertEqual(svc["spec"]["selector"], selector)
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertEqual([(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]],
                         [("http", 8080, "http")])
        self.assertNotIn("externalTrafficPolicy", svc["spec"])

        c = container(objects)
        self.assertEqual(c["image"], "portcullis:0.1.0")
        self.assertEqual(c["args"], ["gateway"])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"http": 8080, "ops": 9090})
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], path, probe)
            port = get["port"]
            self.assertEqual(ports.get(port, port), 9090, probe)

        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_MANAGEMENT_URL"]["value"], "https://mgmt.example:8090")
        self.assertEqual(env["PORTCULLIS_LISTEN"]["value"], "0.0.0.0:8080")
        self.assertEqual(env["PORTCULLIS_OPS_LISTEN"]["value"], "0.0.0.0:9090")
        self.assertSecretRef(objects, "PORTCULLIS_GATEWAY_TOKEN", FULLNAME, "token")
        secret = objects[("Secret", FULLNAME)]
        self.assertEqual(base64.b64decode(secret["data"]["token"]).decode(), TOKEN)
        self.assertEqual(set(secret["data"]), {"token"})
        for absent in ("PORTCULLIS_BACKUP_DIR", "PORTCULLIS_BACKUP_KEY", "PORTCULLIS_TLS_CERT"):
            self.assertNotIn(absent, env)
        self.assertNotIn("volumes", pod["spec"])
        self.assertNotIn("volumeMounts", c)

        grace = int(env["PORTCULLIS_SHUTDOWN_GRACE"]["value"])
        self.assertEqual(grace, 30)
        self.assertEqual(pod["spec"]["terminationGracePeriodSeconds"], grace + 5)
        self.assertIn("checksum/secret", pod["metadata"]["annotations"])
        self.assertEqual(pod["spec"]["serviceAccountName"], FULLNAME)
        self.assertIs(pod["spec"]["automountServiceAccountToken"], False)

    def test_security_context_is_non_root_and_read_only(self):
        objects = render()
        pod = workload(objects)["spec"]["template"]["spec"]
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(pod["securityContext"]["runAsUser"], 65532)
        self.assertEqual(pod["securityContext"]["fsGroup"], 65532)
        # With the lines below: the Pod Security Standard "restricted".
        self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
        sc = container(objects)["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertEqual(sc["runAsUser"], 65532)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])

    def test_shutdown_grace_sets_the_termination_grace_period(self):
        objects = render("--set", "gateway.shutdownGraceSeconds=90",
                         "--set", "gateway.terminationGraceExtraSeconds=10")
        self.assertEqual(env_of(objects)["PORTCULLIS_SHUTDOWN_GRACE"]["value"], "90")
        pod = workload(objects)["spec"]["template"]["spec"]
        self.assertEqual(pod["terminationGracePeriodSeconds"], 100)

    def test_existing_token_secret_is_referenced_and_none_is_created(self):
        done = run_render("--set", "gateway.configuration.uri=https://m:8090",
                          "--set", "gateway.auth.existingSecretName=gw-token",
                          "--set", "gateway.auth.existingSecretKey=key")
        self.assertEqual(done.returncode, 0, done.stderr)
        objects = parse(done.stdout)
        self.assertNotIn("Secret", kinds(objects))
        self.assertSecretRef(objects, "PORTCULLIS_GATEWAY_TOKEN", "gw-token", "key")
        pod = workload(objects)["spec"]["template"]
        self.assertNotIn("annotations", pod["metadata"])

    def test_backup_needs_a_key(self):
        err = render_error(*BASE, "--set", "gateway.backup.enabled=true")
        self.assertIn("gateway.backup.key", err)

    def test_backup_in_an_empty_dir_by_default(self):
        objects = render("--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.key=" + BACKUP_KEY)
        self.assertEqual(workload(objects)["kind"], "Deployment")
        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_BACKUP_DIR"]["value"], BACKUP_DIR)
        self.assertSecretRef(objects, "PORTCULLIS_BACKUP_KEY", FULLNAME, "backup-key")
        secret = objects[("Secret", FULLNAME)]
        self.assertEqual(base64.b64decode(secret["data"]["backup-key"]).decode(), BACKUP_KEY)
        mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
        self.assertEqual(mounts["backup"]["mountPath"], BACKUP_DIR)
        volumes = {v["name"]: v for v in workload(objects)["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["backup"], {"name": "backup", "emptyDir": {}})

    def test_backup_key_from_an_existing_secret(self):
        objects = render("--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.existingSecretName=bk",
                         "--set", "gateway.backup.existingSecretKey=k")
        self.assertSecretRef(objects, "PORTCULLIS_BACKUP_KEY", "bk", "k")
        self.assertEqual(set(objects[("Secret", FULLNAME)]["data"]), {"token"})

    def test_no_store_by_default_so_the_management_planes_setting_applies(self):
        objects = render("--set", "replicaCount=3")
        self.assertEqual([n for n in env_of(objects) if n.startswith("PORTCULLIS_STORE")], [])
        self.assertEqual(set(objects[("Secret", FULLNAME)]["data"]), {"token"})

    def test_store_url_as_a_value_is_kept_in_the_charts_secret_only(self):
        # A values file: its numbers arrive as floats and must print as integers.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({"replicaCount": 3, "gateway": {"store": {
                "url": STORE_URL, "counting": "approximate", "onFailure": "closed",
                "timeoutMs": 250, "syncIntervalMs": 1000, "keyPrefix": "edge:{shared}:"}}}, f)
        try:
            done = run_render(*BASE, "-f", f.name)
            notes = run_render("--notes", *BASE, "-f", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(done.returncode, 0, done.stderr)
        objects = parse(done.stdout)
        env = env_of(objects)
        self.assertSecretRef(objects, "PORTCULLIS_STORE", FULLNAME, "store-url")
        self.assertNotIn("value", env["PORTCULLIS_STORE"])
        self.assertEqual([env[n]["value"] for n in STORE_SETTINGS],
                         ["approximate", "closed", "250", "1000"])
        self.assertEqual(env["PORTCULLIS_STORE_KEY_PREFIX"]["value"], "edge:{shared}:")
        secret = objects[("Secret", FULLNAME)]
        self.assertEqual(set(secret["data"]), {"token", "store-url"})
        self.assertEqual(base64.b64decode(secret["data"]["store-url"]).decode(), STORE_URL)
        # The password is nowhere in clear: not in the manifests (the Secret
        # has it in base64), not in any object but the Secret, not in the notes.
        self.assertNotIn(REDIS_PASSWORD, done.stdout)
        for key, obj in objects.items():
            if key != ("Secret", FULLNAME):
                self.assertNotIn(REDIS_PASSWORD, yaml.safe_dump(obj), key)
                self.assertNotIn(base64.b64encode(STORE_URL.encode()).decode(),
                                 yaml.safe_dump(obj), key)
        self.assertEqual(notes.returncode, 0, notes.stderr)
        self.assertNotIn(REDIS_PASSWORD, notes.stdout)
        self.assertIn("Redis (the URL from Secret %s, key store-url)" % FULLNAME, notes.stdout)
        self.assertIn("counting approximate, on failure closed", notes.stdout)
        self.assertNotIn("WARNING", notes.stdout)

    def test_a_new_store_url_restarts_the_pods(self):
        def checksum(url):
            objects = render("--set-string", "gateway.store.url=" + url)
            return workload(objects)["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        self.assertNotEqual(checksum(STORE_URL), checksum(STORE_URL.replace("/2", "/3")))

    def test_store_url_from_an_existing_secret(self):
        done = run_render("--set", "gateway.configuration.uri=https://m:8090",
                          "--set", "gateway.auth.existingSecretName=gw-token",
                          "--set", "gateway.store.existingSecretName=redis-url",
                          "--set", "gateway.store.existingSecretKey=url",
                          "--set", "gateway.store.timeoutMs=40")
        self.assertEqual(done.returncode, 0, done.stderr)
        objects = parse(done.stdout)
        # Nothing secret is a value: the chart creates no Secret at all.
        self.assertNotIn("Secret", kinds(objects))
        self.assertSecretRef(objects, "PORTCULLIS_STORE", "redis-url", "url")
        env = env_of(objects)
        self.assertEqual([env[n]["value"] for n in STORE_SETTINGS], ["exact", "open", "40", "200"])
        self.assertNotIn("PORTCULLIS_STORE_KEY_PREFIX", env)
        # With the token as a value the chart's Secret holds the token alone.
        objects = render("--set", "gateway.store.existingSecretName=redis-url")
        self.assertSecretRef(objects, "PORTCULLIS_STORE", "redis-url", "store-url")
        self.assertEqual(set(objects[("Secret", FULLNAME)]["data"]), {"token"})

    def test_store_values_are_checked_without_showing_the_url(self):
        cases = [("gateway.store.url=http://:hunter2@redis:6379", "gateway.store.url must be"),
                 ("gateway.store.counting=fast", "gateway.store.counting must be exact or approximate"),
                 ("gateway.store.onFailure=shut", "gateway.store.onFailure must be open or closed"),
                 ("gateway.store.timeoutMs=0", "gateway.store.timeoutMs must be 1 to 60000"),
                 ("gateway.store.syncIntervalMs=5", "gateway.store.syncIntervalMs must be 10 to 60000"),
                 ("gateway.store.keyPrefix=a b", "gateway.store.keyPrefix must be 1 to 200")]
        for value, message in cases:
            err = render_error(*BASE, "--set-string", "gateway.store.url=redis://:hunter2@redis:6379",
                               "--set-string", value)
            self.assertIn(message, err)
            self.assertNotIn("hunter2", err)
        # The edges are accepted, and so is local (this replica counts alone).
        objects = render("--set-string", "gateway.store.url=local",
                         "--set", "gateway.store.timeoutMs=60000",
                         "--set", "gateway.store.syncIntervalMs=10")
        self.assertEqual(env_of(objects)["PORTCULLIS_STORE_TIMEOUT_MS"]["value"], "60000")

    def test_notes_warn_that_limits_are_per_pod_without_a_store(self):
        def notes(*args):
            done = run_render("--notes", *BASE, *args)
            self.assertEqual(done.returncode, 0, done.stderr)
            return done.stdout
        self.assertNotIn("WARNING", notes())
        three = notes("--set", "replicaCount=3")
        self.assertIn("WARNING: 3 pods and no shared-state store", three)
        self.assertIn("counted per pod", three)
        self.assertIn("unless the management plane's\nsetting for this gateway names a Redis store",
                      three)
        scaled = notes("--set", "autoscaling.enabled=true", "--set-string", "gateway.store.url=local")
        self.assertIn("WARNING: up to 10 pods and no shared-state store (gateway.store.url is local)",
                      scaled)
        self.assertNotIn("management plane's", scaled)
        shared = notes("--set", "autoscaling.enabled=true",
                       "--set", "gateway.store.existingSecretName=redis-url")
        self.assertNotIn("WARNING", shared)
        self.assertIn("Redis (the URL from Secret redis-url, key store-url)", shared)

    def test_persistent_backup_with_three_replicas_is_a_statefulset_with_a_claim_per_pod(self):
        objects = render("--set", "replicaCount=3",
                         "--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.key=" + BACKUP_KEY,
                         "--set", "gateway.backup.persistence.enabled=true",
                         "--set", "gateway.backup.persistence.size=1Gi",
                         "--set", "gateway.backup.persistence.storageClassName=fast")
        self.assertNotIn("Deployment", kinds(objects))
        sts = objects[("StatefulSet", FULLNAME)]
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(sts["spec"]["serviceName"], FULLNAME)
        self.assertIn(("Service", FULLNAME), objects)
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        self.assertEqual(claim["metadata"]["name"], "backup")
        self.assertEqual(claim["spec"]["resources"]["requests"]["storage"], "1Gi")
        self.assertEqual(claim["spec"]["storageClassName"], "fast")
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
        self.assertEqual(mounts["backup"], BACKUP_DIR)
        # The claim template provides the volume: a pod volume of that name would clash.
        self.assertNotIn("volumes", sts["spec"]["template"]["spec"])
        selector = sts["spec"]["selector"]["matchLabels"]
        for k, v in selector.items():
            self.assertEqual(sts["spec"]["template"]["metadata"]["labels"][k], v)

    def test_storage_class_dash_asks_for_none(self):
        objects = render("--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.key=" + BACKUP_KEY,
                         "--set", "gateway.backup.persistence.enabled=true",
                         "--set", "gateway.backup.persistence.storageClassName=-")
        (claim,) = workload(objects)["spec"]["volumeClaimTemplates"]
        self.assertEqual(claim["spec"]["storageClassName"], "")

    def test_existing_claim_serves_one_pod_with_recreate(self):
        objects = render("--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.key=" + BACKUP_KEY,
                         "--set", "gateway.backup.persistence.enabled=true",
                         "--set", "gateway.backup.persistence.existingClaim=gw-backup")
        dep = objects[("Deployment", FULLNAME)]
        self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["backup"]["persistentVolumeClaim"], {"claimName": "gw-backup"})

    def test_existing_claim_is_refused_for_several_pods(self):
        for extra in (["--set", "replicaCount=3"], ["--set", "autoscaling.enabled=true"]):
            err = render_error(*BASE, "--set", "gateway.backup.enabled=true",
                               "--set", "gateway.backup.key=" + BACKUP_KEY,
                               "--set", "gateway.backup.persistence.enabled=true",
                               "--set", "gateway.backup.persistence.existingClaim=gw-backup",
                               *extra)
            self.assertIn("existingClaim serves one pod", err)

    def test_replicas(self):
        objects = render("--set", "replicaCount=3")
        self.assertEqual(objects[("Deployment", FULLNAME)]["spec"]["replicas"], 3)

    def test_hpa_targets_the_deployment(self):
        objects = render("--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=3",
                         "--set", "autoscaling.maxReplicas=7",
                         "--set", "autoscaling.targetMemoryUtilizationPercentage=80")
        hpa = objects[("HorizontalPodAutoscaler", FULLNAME)]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        self.assertEqual(hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME})
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (3, 7))
        targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
                   for m in hpa["spec"]["metrics"]}
        self.assertEqual(targets, {"cpu": 70, "memory": 80})
        # The HPA owns the replica count.
        self.assertNotIn("replicas", objects[("Deployment", FULLNAME)]["spec"])

    def test_hpa_targets_the_statefulset_when_there_is_one(self):
        objects = render("--set", "autoscaling.enabled=true",
                         "--set", "gateway.backup.enabled=true",
                         "--set", "gateway.backup.key=" + BACKUP_KEY,
                         "--set", "gateway.backup.persistence.enabled=true")
        ref = objects[("HorizontalPodAutoscaler", FULLNAME)]["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("StatefulSet", FULLNAME))
        self.assertNotIn("replicas", objects[("StatefulSet", FULLNAME)]["spec"])

    def test_pdb_selects_the_gateway_pods(self):
        objects = render("--set", "podDisruptionBudget.enabled=true", "--set", "replicaCount=3")
        pdb = objects[("PodDisruptionBudget", FULLNAME)]
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["minAvailable"], 1)
        self.assertNotIn("maxUnavailable", pdb["spec"])
        dep = objects[("Deployment", FULLNAME)]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"],
                         dep["spec"]["selector"]["matchLabels"])

    def test_pdb_max_unavailable_wins(self):
        objects = render("--set", "podDisruptionBudget.enabled=true",
                         "--set", "podDisruptionBudget.maxUnavailable=25%")
        spec = objects[("PodDisruptionBudget", FULLNAME)]["spec"]
        self.assertEqual(spec["maxUnavailable"], "25%")
        self.assertNotIn("minAvailable", spec)

    def test_service_annotations_type_and_traffic_policy_pass_through(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({"service": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "annotations": {
                    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
                    "example.com/owner": "team-api"},
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "ports": {"http": {"port": 80, "nodePort": 30080}}}}, f)
        try:
            objects = render("-f", f.name)
        finally:
            os.unlink(f.name)
        svc = objects[("Service", FULLNAME)]
        self.assertEqual(svc["metadata"]["annotations"], {
            "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
            "example.com/owner": "team-api"})
        self.assertEqual(svc["spec"]["type"], "LoadBalancer")
        self.assertEqual(svc["spec"]["externalTrafficPolicy"], "Local")
        self.assertEqual(svc["spec"]["loadBalancerSourceRanges"], ["10.0.0.0/8"])
        (http,) = svc["spec"]["ports"]
        self.assertEqual((http["port"], http["targetPort"], http["nodePort"]), (80, "http", 30080))

    def test_cluster_ip_service_ignores_node_settings(self):
        objects = render("--set", "service.externalTrafficPolicy=Local",
                         "--set", "service.ports.http.nodePort=30080")
        svc = objects[("Service", FULLNAME)]
        self.assertNotIn("externalTrafficPolicy", svc["spec"])
        self.assertNotIn("nodePort", svc["spec"]["ports"][0])

    def test_tls_exposes_https_from_a_tls_secret(self):
        objects = render("--set", "gateway.tls.enabled=true", "--set", "gateway.tls.secretName=gw-tls")
        c = container(objects)
        self.assertIn({"name": "https", "containerPort": 8081, "protocol": "TCP"}, c["ports"])
        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_HTTPS_LISTEN"]["value"], "0.0.0.0:8081")
        self.assertEqual(env["PORTCULLIS_TLS_CERT"]["value"], "/etc/portcullis/tls/tls.crt")
        self.assertEqual(env["PORTCULLIS_TLS_KEY"]["value"], "/etc/portcullis/tls/tls.key")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        self.assertEqual(mounts["tls"]["mountPath"], "/etc/portcullis/tls")
        self.assertIs(mounts["tls"]["readOnly"], True)
        volumes = {v["name"]: v for v in workload(objects)["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["tls"]["secret"], {"secretName": "gw-tls"})
        ports = {p["name"]: (p["port"], p["targetPort"])
                 for p in objects[("Service", FULLNAME)]["spec"]["ports"]}
        self.assertEqual(ports, {"http": (8080, "http"), "https": (8081, "https")})
        self.assertIn("gateway.tls.secretName",
                      render_error(*BASE, "--set", "gateway.tls.enabled=true"))

    def test_management_ca_and_public_key(self):
        objects = render("--set", "gateway.configuration.caConfigMap=mgmt-ca",
                         "--set", "gateway.configuration.publicKey=AAAA")
        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_CA"]["value"], "/etc/portcullis/ca/ca.crt")
        self.assertEqual(env["PORTCULLIS_MANAGEMENT_PUBLIC_KEY"]["value"], "AAAA")
        volumes = {v["name"]: v for v in workload(objects)["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["management-ca"]["configMap"], {"name": "mgmt-ca"})

    def test_extra_env_settings_and_pod_metadata_pass_through(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({
                "gateway": {
                    "env": {"PORTCULLIS_MAX_BODY_BYTES": 10485760,
                            "PORTCULLIS_ACCESS_LOG": "json",
                            "PORTCULLIS_ALLOW_UNDERSCORES_IN_HEADERS": True},
                    "extraEnv": [{"name": "PORTCULLIS_OTLP_ENDPOINT",
                                  "valueFrom": {"configMapKeyRef": {"name": "otel", "key": "url"}}}],
                    "extraEnvFrom": [{"configMapRef": {"name": "gw-settings"}}]},
                "podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
                "podLabels": {"team": "api"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "edge", "operator": "Exists"}],
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {
                        "app.kubernetes.io/instance": "{{ .Release.Name }}"}}}],
                "image": {"repository": "registry.example.com/portcullis", "tag": "local"},
            }, f)
        try:
            objects = render("-f", f.name)
        finally:
            os.unlink(f.name)
        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_MAX_BODY_BYTES"]["value"], "10485760")
        self.assertEqual(env["PORTCULLIS_ACCESS_LOG"]["value"], "json")
        self.assertEqual(env["PORTCULLIS_ALLOW_UNDERSCORES_IN_HEADERS"]["value"], "true")
        self.assertEqual(env["PORTCULLIS_OTLP_ENDPOINT"]["valueFrom"]["configMapKeyRef"]["name"], "otel")
        c = container(objects)
        self.assertEqual(c["envFrom"], [{"configMapRef": {"name": "gw-settings"}}])
        self.assertEqual(c["image"], "registry.example.com/portcullis:local")
        pod = workload(objects)["spec"]["template"]
        self.assertEqual(pod["metadata"]["annotations"]["prometheus.io/port"], "9090")
        self.assertEqual(pod["metadata"]["labels"]["team"], "api")
        self.assertEqual(pod["spec"]["nodeSelector"], {"kubernetes.io/os": "linux"})
        self.assertEqual(pod["spec"]["tolerations"], [{"key": "edge", "operator": "Exists"}])
        (spread,) = pod["spec"]["topologySpreadConstraints"]
        self.assertEqual(spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"], RELEASE)

    def test_notes_name_the_service_and_the_management_url(self):
        done = run_render("--notes", *BASE, "--set", "gateway.tls.enabled=true",
                          "--set", "gateway.tls.secretName=gw-tls")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("connects to\n  https://mgmt.example:8090", done.stdout)
        self.assertIn("service %s port 8080 (http) and 8081 (https)" % FULLNAME, done.stdout)
        self.assertIn("svc/%s 8080:8080" % FULLNAME, done.stdout)

    def test_name_overrides(self):
        objects = render("--set", "fullnameOverride=gw")
        self.assertIn(("Deployment", "gw"), objects)
        self.assertSecretRef(objects, "PORTCULLIS_GATEWAY_TOKEN", "gw", "token")
        done = run_render(*BASE)
        self.assertEqual(done.returncode, 0)
        # A release named after the chart is not repeated.
        named = subprocess.run([_render_bin, "--name", "portcullis-gateway", *BASE, CHART],
                               capture_output=True, text=True, check=True)
        self.assertIn(("Deployment", "portcullis-gateway"), parse(named.stdout))


class Renderer(unittest.TestCase):
    def test_renderer_is_gofmt_clean_and_vets(self):
        src = os.path.join(HERE, "render")
        unformatted = subprocess.run(["gofmt", "-l", "."], cwd=src, capture_output=True,
                                     text=True, check=True).stdout
        self.assertEqual(unformatted, "", "run gofmt -w deploy/helm/render")
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                   GOCACHE=os.path.join(_work, "gocache"), GOFLAGS="")
        vet = subprocess.run(["go", "vet", "."], cwd=src, env=env, capture_output=True, text=True)
        self.assertEqual(vet.returncode, 0, vet.stderr)

    def test_kube_version_range_of_the_chart_is_enforced(self):
        err = render_error(*BASE, "--kube-version", "v1.22.0")
        self.assertIn("incompatible with Kubernetes v1.22.0", err)


VALUES_SECTION = "## Values"


def values_keys(values, prefix=""):
    """Every path in values.yaml (dotted), with its value."""
    out = {}
    for k, v in values.items():
        path = prefix + k
        out[path] = v
        if isinstance(v, dict):
            out.update(values_keys(v, path + "."))
    return out


def leaves(values, prefix=""):
    out = []
    for k, v in values.items():
        path = prefix + k
        if isinstance(v, dict) and v:
            out.extend(leaves(v, path + "."))
        else:
            out.append(path)
    return out


def readme_table():
    with open(os.path.join(CHART, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index(VALUES_SECTION):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*?) \| (.*) \|$", line)
        if m:
            if m.group(1) in rows:
                raise AssertionError("documented twice: " + m.group(1))
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def shown(value):
    """How a default is written in the README's table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    return str(value)


class Documentation(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
            self.values = yaml.safe_load(f)
        self.rows = readme_table()
        self.paths = values_keys(self.values)

    def test_every_value_is_documented(self):
        missing = []
        for leaf in leaves(self.values):
            parts = leaf.split(".")
            if not any(".".join(parts[:i]) in self.rows for i in range(1, len(parts) + 1)):
                missing.append(leaf)
        self.assertEqual(missing, [], "values.yaml keys missing from the chart README's table")

    def test_every_documented_key_exists(self):
        unknown = [k for k in self.rows if k not in self.paths]
        self.assertEqual(unknown, [], "README documents keys values.yaml does not have")

    def test_documented_defaults_match(self):
        for key, (default, _) in self.rows.items():
            value = self.paths.get(key)
            if isinstance(value, (dict, list)) and value:
                continue  # objects are described in words
            m = re.match(r"^`([^`]*)`", default)
            self.assertIsNotNone(m, "%s: the default should start with a `code` value" % key)
            self.assertEqual(m.group(1), shown(value), key)


class PlainManifests(unittest.TestCase):
    def test_committed_manifests_equal_a_fresh_render(self):
        fresh = os.path.join(_work, "plain.yaml")
        subprocess.run([os.path.join(HERE, "render.sh"), fresh], check=True,
                       env=dict(os.environ, PORTCULLIS_HELM_RENDER=_render_bin))
        with open(fresh, encoding="utf-8") as f:
            want = f.read()
        with open(PLAIN, encoding="utf-8") as f:
            have = f.read()
        self.assertEqual(have, want, "deploy/kubernetes/portcullis-gateway.yaml is stale: "
                                     "run deploy/helm/render.sh")

    def test_plain_manifests_reference_the_token_secret_and_a_placeholder_url(self):
        with open(PLAIN, encoding="utf-8") as f:
            objects = parse(f.read())
        self.assertEqual(kinds(objects), ["Deployment", "Service", "ServiceAccount"])
        env = env_of(objects)
        self.assertEqual(env["PORTCULLIS_MANAGEMENT_URL"]["value"],
                         "http://portcullis-management:8090")
        ref = env["PORTCULLIS_GATEWAY_TOKEN"]["valueFrom"]["secretKeyRef"]
        self.assertEqual((ref["name"], ref["key"]), ("portcullis-gateway-token", "token"))
        # No store: the management plane's setting for the gateway applies.
        self.assertEqual([n for n in env if n.startswith("PORTCULLIS_STORE")], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
