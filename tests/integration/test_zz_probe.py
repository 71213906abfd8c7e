import httpx, pytest, json, ollama
pytestmark = pytest.mark.integration
def test_probe(bridge, backend):
    backend.script(match_path="/v1/models", status=500)
    c = ollama.Client(host=bridge.url)
    for i in range(4):
        try:
            print(c.show("nope"))
        except Exception as e:
            print("exc", type(e), e)
    r = httpx.post(bridge.url + "/api/show", json={"model": "nope"})
    print(r.status_code, r.text[:100])
