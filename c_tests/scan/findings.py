#!/usr/bin/env python3
"""Read the JSON reports of the TLS scanners for c_tests/scan/scan_check.sh.

    findings.py sslyze REPORT.json HOST PORT
        The scan of HOST:PORT completed: the server was reached and every
        scan command that sslyze's Mozilla check needs ran.  (Whether the
        server complies is sslyze's exit status: it exits 1 when it does not,
        but 0 when it reached no server at all, which this catches.)  Prints
        what the server accepted.

    findings.py testssl REPORT.json
        testssl.sh's flat JSON (--jsonfile): every check the gate relies on
        ran, none hit a scan problem (but the known flaky ones below), and no
        finding is LOW or worse except the allowed ones below.  Prints one line per offending finding
        ("ID SEVERITY: finding"), the allowed ones and the suites offered.

Exit status 0 when all is well, 1 otherwise (2: unreadable report).
Standard library only: runs under any python3.
"""
import json
import sys

# ---------------------------------------------------------------- sslyze

# The scan commands sslyze's --mozilla_config check reads
# (sslyze/mozilla_tls_profile/tls_config_checker.py,
# SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER).
SSLYZE_NEEDED = (
    "certificate_info",
    "ssl_2_0_cipher_suites",
    "ssl_3_0_cipher_suites",
    "tls_1_0_cipher_suites",
    "tls_1_1_cipher_suites",
    "tls_1_2_cipher_suites",
    "tls_1_3_cipher_suites",
    "tls_compression",
    "openssl_ccs_injection",
    "tls_fallback_scsv",
    "heartbleed",
    "robot",
    "session_renegotiation",
    "elliptic_curves",
    "tls_extended_master_secret",
)

SSLYZE_VERSIONS = (
    ("ssl_2_0_cipher_suites", "SSLv2"),
    ("ssl_3_0_cipher_suites", "SSLv3"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
)


def sslyze(path, host, port):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    problems = []
    if report.get("invalid_server_strings"):
        problems.append(f"sslyze rejected the target: {report['invalid_server_strings']}")
    results = report.get("server_scan_results") or []
    mine = [
        r
        for r in results
        if r.get("server_location", {}).get("ip_address") == host
        and str(r.get("server_location", {}).get("port")) == str(port)
    ]
    if len(mine) != 1:
        problems.append(f"the report has {len(mine)} scans of {host}:{port}, expected 1")
        return report_problems(problems)
    res = mine[0]
    if res.get("connectivity_status") != "COMPLETED":
        problems.append(
            f"sslyze could not connect: {res.get('connectivity_status')}"
            f" {res.get('connectivity_error_trace') or ''}".rstrip()
        )
    if res.get("scan_status") != "COMPLETED":
        problems.append(f"scan status {res.get('scan_status')}")
    scan = res.get("scan_result") or {}
    for cmd in SSLYZE_NEEDED:
        status = (scan.get(cmd) or {}).get("status")
        if status != "COMPLETED":
            err = (scan.get(cmd) or {}).get("error_reason") or ""
            problems.append(f"scan command {cmd}: {status} {err}".rstrip())
    if problems:
        return report_problems(problems)

    # What the server accepted, for the log.
    for field, name in SSLYZE_VERSIONS:
        r = scan[field]["result"]
        if r.get("is_tls_version_supported"):
            suites = [a["cipher_suite"]["name"] for a in r.get("accepted_cipher_suites", [])]
            print(f"{name}: {' '.join(suites)}")
    curves = scan["elliptic_curves"]["result"].get("supported_curves") or []
    print(f"groups: {' '.join(c['name'] for c in curves)}")
    return 0


# --------------------------------------------------------------- testssl

# testssl.sh states its verdict as a severity: "NOT ok" and "VULNERABLE" are
# printed at MEDIUM, HIGH or CRITICAL; "potentially VULNERABLE" (LUCKY13),
# deprecated protocols (TLS 1.0/1.1) and CBC suites ("Obsolete CBC ciphers")
# at LOW.  WARN marks a check that could not run.  OK, INFO and DEBUG pass.
TESTSSL_FAILING = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN"}

# Findings about the throwaway test certificate, not about the TLS
# configuration under test: id -> why it is allowed.  Nothing else is.
TESTSSL_ALLOWED = {
    # "NOT ok -- neither CRL nor OCSP URI provided": the test CA publishes
    # no revocation information (it is made for this run and thrown away).
    "cert_revocation": "the throwaway test certificate names no CRL or OCSP responder",
}

# Scan problems (WARN) allowed, on checks outside the gate's scope only:
# id -> why.
TESTSSL_FLAKY = {
    # testssl 3.0's resumption test runs `openssl s_client -sess_out F
    # </dev/null`, which often closes before a TLS 1.3 NewSessionTicket
    # arrives (it does so against openssl s_server too), then fails to read
    # the empty F: "check failed because of connect problem".
    "sessionresumption_ticket": "testssl 3.0's resumption test races with TLS 1.3 session tickets",
    "sessionresumption_ID": "testssl 3.0's resumption test races with TLS 1.3 session tickets",
}

# Checks that must have run (testssl 3.0's finding ids): protocols, cipher
# categories, forward secrecy, server cipher order, renegotiation and every
# vulnerability test that applies to a plain TLS service.
TESTSSL_REQUIRED = (
    # protocols
    "SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3",
    # cipher categories
    "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
    "cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "cipherlist_STRONG",
    # forward secrecy, key exchange groups, server preference
    "PFS", "PFS_ECDHE_curves", "cipher_order",
    # certificate (trust through --add-ca)
    "cert_chain_of_trust", "cert_trust",
    # vulnerabilities, renegotiation
    "heartbleed", "CCS", "ROBOT", "secure_renego", "secure_client_renego",
    "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN",
    "LOGJAM", "BEAST", "LUCKY13", "RC4",
)


def testssl(path):
    with open(path, encoding="utf-8") as f:
        findings = json.load(f)
    if not isinstance(findings, list):
        print("the report is not testssl's flat JSON (--jsonfile)")
        return 2
    seen = {f.get("id") for f in findings}
    problems = [f"check {i} did not run" for i in TESTSSL_REQUIRED if i not in seen]
    for f in findings:
        fid, sev, text = f.get("id"), f.get("severity"), f.get("finding", "")
        if sev not in TESTSSL_FAILING:
            continue
        if fid in TESTSSL_ALLOWED:
            print(f"allowed: {fid} {sev}: {text} ({TESTSSL_ALLOWED[fid]})")
            continue
        if sev == "WARN" and fid in TESTSSL_FLAKY:
            print(f"allowed: {fid} {sev}: {text} ({TESTSSL_FLAKY[fid]})")
            continue
        problems.append(f"{fid} {sev}: {text}")
    # The suites offered, for the log.
    offered = [f.get("finding", "").split()[1] for f in findings
               if str(f.get("id", "")).startswith("cipher_x") and len(f.get("finding", "").split()) > 1]
    if offered:
        print(f"offered: {' '.join(offered)}")
    return report_problems(problems)


def report_problems(problems):
    for p in problems:
        print(f"{p}")
    return 1 if problems else 0


def main(argv):
    try:
        if len(argv) == 5 and argv[1] == "sslyze":
            return sslyze(argv[2], argv[3], argv[4])
        if len(argv) == 3 and argv[1] == "testssl":
            return testssl(argv[2])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"cannot read the report {argv[2]}: {e!r}")
        return 2
    print("usage: findings.py sslyze REPORT.json HOST PORT | findings.py testssl REPORT.json",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
