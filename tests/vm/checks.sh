# Sourced by the test scripts that run in the VM: timestamped steps, and a
# PASS or FAIL line per check under the script's $label. $failed becomes 1
# once a check has failed; the script exits with it.
failed=0
started=$(date +%s)

say() { echo "[$(($(date +%s) - started))s] $*"; }
check() { # check WHAT COMMAND...: PASS if COMMAND succeeds
    local what=$1
    shift
    if "$@"; then echo "PASS $label: $what"; else echo "FAIL $label: $what"; failed=1; return 1; fi
}
wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND until true, at most SECONDS
    local end=$((SECONDS + $1))
    shift
    while ((SECONDS < end)); do "$@" && return 0; sleep 0.05; done
    return 1
}
