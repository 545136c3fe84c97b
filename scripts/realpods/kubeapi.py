"""Just enough of a Kubernetes API client for the node helpers (stdlib only): reads the
test cluster's token kubeconfig that scripts/testcluster writes."""
import json, re, ssl, urllib.error, urllib.request


class Api:
    def __init__(self, kubeconfig):
        text = open(kubeconfig, encoding="utf-8").read()
        self.server = re.search(r"server:\s*(\S+)", text).group(1)
        self.token = re.search(r"token:\s*(\S+)", text).group(1)
        self.ctx = ssl.create_default_context(cafile=re.search(r"certificate-authority:\s*(\S+)", text).group(1))

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            if e.code in (404, 409):  # gone already / made already: the next round sees the truth
                return None
            raise

    def items(self, path):
        return (self.call("GET", path) or {}).get("items", [])
