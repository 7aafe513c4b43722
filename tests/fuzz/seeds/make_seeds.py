#!/usr/bin/env python3
"""Makes the fuzz seed corpora from a real `traj demo` run (stdlib only, no protobuf package).

    target/debug/traj demo --dir /tmp/fz --tasks 5
    python3 tests/fuzz/seeds/make_seeds.py /tmp/fz /tmp/seeds

writes /tmp/seeds/<target>/: per-trace and single-span ExportTraceServiceRequests cut out of the raw
store segment (assemble; otlp_protobuf with its flag byte, plain and gzip), the same requests as
OTLP/JSON plus the spec example (otlp_json), `session.json` NUL `events.jsonl` (run_reader) and
dataset lines plus PII samples (redact). Then: cargo fuzz cmin / -merge=1 into tests/fuzz/corpus/.
"""
import base64, collections, glob, gzip, json, os, re, struct, sys
import struct, sys, os, gzip, collections
def varint(b, i):
    r=0; s=0
    while True:
        c=b[i]; i+=1; r|=(c&0x7f)<<s; s+=7
        if c<0x80: return r,i
def fields(b):
    i=0
    while i<len(b):
        key,i=varint(b,i); f,wt=key>>3,key&7
        if wt==0: v,i=varint(b,i); yield f,wt,v,None
        elif wt==2:
            n,i=varint(b,i); yield f,wt,b[i:i+n],None; i+=n
        elif wt==1: yield f,wt,b[i:i+8],None; i+=8
        elif wt==5: yield f,wt,b[i:i+4],None; i+=4
        else: raise Exception(wt)
def enc_varint(n):
    o=b''
    while True:
        c=n&0x7f; n>>=7
        if n: o+=bytes([c|0x80])
        else: return o+bytes([c])
def ld(f,payload): return enc_varint((f<<3)|2)+enc_varint(len(payload))+payload

def msg(b, spec):
    out={}
    for f,wt,v,_ in fields(b):
        if f not in spec: continue
        name,kind=spec[f]
        if kind=='str': val=v.decode('utf-8','replace')
        elif kind=='hex': val=v.hex()
        elif kind=='u64': val=str(struct.unpack('<Q',v)[0]) if wt==1 else str(v)
        elif kind=='int': val=v
        elif kind=='bool': val=bool(v)
        elif kind=='dbl': val=struct.unpack('<d',v)[0]
        elif kind=='i64': val=str(v)
        elif kind=='bytes':
            import base64; val=base64.b64encode(v).decode()
        else:
            val=msg(v, kind[1]) if kind[0]=='m' else None
            if kind[0]=='r':
                out.setdefault(name,[]).append(msg(v,kind[1])); continue
        out[name]=val
    return out
ANY={}
KV={1:('key','str'),2:('value',('m',ANY))}
ARR={1:('values',('r',ANY))}
KVL={1:('values',('r',KV))}
ANY.update({1:('stringValue','str'),2:('boolValue','bool'),3:('intValue','i64'),4:('doubleValue','dbl'),5:('arrayValue',('m',ARR)),6:('kvlistValue',('m',KVL)),7:('bytesValue','bytes')})
EV={1:('timeUnixNano','u64'),2:('name','str'),3:('attributes',('r',KV))}
LINK={1:('traceId','hex'),2:('spanId','hex'),3:('traceState','str'),4:('attributes',('r',KV))}
STATUS={2:('message','str'),3:('code','int')}
SPAN={1:('traceId','hex'),2:('spanId','hex'),3:('traceState','str'),4:('parentSpanId','hex'),5:('name','str'),6:('kind','int'),7:('startTimeUnixNano','u64'),8:('endTimeUnixNano','u64'),9:('attributes',('r',KV)),11:('events',('r',EV)),13:('links',('r',LINK)),15:('status',('m',STATUS))}
SCOPE={1:('name','str'),2:('version','str'),3:('attributes',('r',KV))}
SS={1:('scope',('m',SCOPE)),2:('spans',('r',SPAN)),3:('schemaUrl','str')}
RES={1:('attributes',('r',KV))}
RS={1:('resource',('m',RES)),2:('scopeSpans',('r',SS)),3:('schemaUrl','str')}
REQ={1:('resourceSpans',('r',RS))}



def main():
    demo, outdir = sys.argv[1], sys.argv[2]
    seg = sorted(glob.glob(f"{demo}/data/raw/seg-*.log"))[0]
    d = open(seg, "rb").read()
    off = 0; recs = []
    while off < len(d):  # store record: 24-byte header, payload length at offset 8
        n = struct.unpack("<I", d[off + 8:off + 12])[0]
        recs.append(d[off + 24:off + 24 + n]); off += 24 + n
    traces = collections.OrderedDict()
    for r in recs:
        for f, _, rs, _ in fields(r):
            if f != 1: continue
            res = b""; scopes = []
            for f2, _, v, _ in fields(rs):
                if f2 == 1: res = v
                elif f2 == 2: scopes.append(v)
            for ss in scopes:
                scope = b""; spans = []
                for f3, _, v, _ in fields(ss):
                    if f3 == 1: scope = v
                    elif f3 == 2: spans.append(v)
                for sp in spans:
                    tid = next(v for f4, _, v, _ in fields(sp) if f4 == 1)
                    traces.setdefault(tid, []).append((res, scope, sp))
    def build(items):
        return b"".join(ld(1, ld(1, res) + ld(2, ld(1, scope) + ld(2, sp))) for res, scope, sp in items)
    for t in ("assemble", "otlp_protobuf", "otlp_json", "run_reader", "redact"):
        os.makedirs(f"{outdir}/{t}", exist_ok=True)
    for k, items in enumerate(traces.values()):
        for name, req in ((f"trace{k}", build(items)), (f"span{k}", build(items[:1])), (f"span{k}b", build(items[-1:]))):
            open(f"{outdir}/assemble/{name}.pb", "wb").write(req)
            open(f"{outdir}/otlp_protobuf/{name}.pb", "wb").write(b"\x00" + req)
            if k == 0:
                open(f"{outdir}/otlp_protobuf/{name}.pb.gz", "wb").write(b"\x01" + gzip.compress(req))
            open(f"{outdir}/otlp_json/{name}.json", "w").write(json.dumps(msg(req, REQ)))
    src = open(os.path.join(os.path.dirname(__file__), "../../../crates/receiver/src/otlp_json.rs")).read()
    m = re.search(r'SPEC_EXAMPLE: &str = r#"(.*?)"#;', src, re.S)
    if m:
        open(f"{outdir}/otlp_json/spec_example.json", "w").write(m.group(1))
    for r in sorted(glob.glob(f"{demo}/data/runs/*")):
        if os.path.exists(f"{r}/session.json"):
            text = open(f"{r}/session.json").read() + "\0" + open(f"{r}/events.jsonl").read()
            open(f"{outdir}/run_reader/{os.path.basename(r)}", "w").write(text)
    lines = []
    for f in sorted(glob.glob(f"{demo}/datasets/train/*.jsonl")):
        lines += open(f).read().splitlines()[:3]
    for i, l in enumerate(lines[:12]):
        open(f"{outdir}/redact/ds{i}", "w").write(l[:4000])
    samples = ["mail alice@example.com or call +1 415 555 0100",
               "key sk-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 and AKIAIOSFODNN7EXAMPLE",
               "ip 10.0.0.1 and 2001:db8::1 card 4111 1111 1111 1111",
               "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123def456",
               "password=hunter2 token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
               "[REDACTED:EMAIL] already <EMAIL_1> x"]
    for i, s in enumerate(samples):
        open(f"{outdir}/redact/s{i}", "w").write(s)
    print(len(traces), "traces")


if __name__ == "__main__":
    main()
