# Steered and unsteered chat requests sent together, then each alone: prints what each got and
# whether the concurrent answer equals the lone one. Usage: side_by_side.py ALPHA [BASE_URL]
# (the server must have loaded a vector named roast-arith with --vectors).
import json, sys, threading, urllib.request, time
URL = (sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080") + "/v1/chat/completions"
prompts = ["What is 17 plus 25?", "What is 48 minus 19?", "Name the capital of France."]
steer = [None, {"vector": "roast-arith", "alpha": float(sys.argv[1]), "layers": "0-4"}]
def ask(p, s):
    body = {"messages": [{"role": "user", "content": p}], "max_tokens": 40, "temperature": 0}
    if s: body["steering"] = [s]
    r = urllib.request.urlopen(urllib.request.Request(URL, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))
    return json.load(r)["choices"][0]["message"]["content"]
jobs = [(p, s) for p in prompts for s in steer]
together = [None] * len(jobs)
def run(i):
    together[i] = ask(*jobs[i])
t0 = time.time()
ts = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
[t.start() for t in ts]; [t.join() for t in ts]
t1 = time.time()
alone = [ask(*j) for j in jobs]
print(f"concurrent: {len(jobs)} requests in {t1-t0:.1f} s")
for (p, s), a, b in zip(jobs, together, alone):
    print(json.dumps({"prompt": p, "steering": "α=%g roast-arith layers 0-4" % s["alpha"] if s else "none", "concurrent": a, "same_alone": a == b}, ensure_ascii=False))
