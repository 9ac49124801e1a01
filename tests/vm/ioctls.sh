# Sourced by the VM tests that stop lvcreate at its device-mapper ioctls
# (inject-lvcreate.sh): reading strace's record of them.

# What an ioctl line does to device-mapper, from its input (the part an
# unfinished line has): create, load, suspend, resume, remove, clear,
# rename or message; nothing for a query.
_ioctl_what='
function what(line,   input, req) {
    input = line; sub(/ => .*/, "", input)
    if (!match(input, /^ioctl\([0-9]+, DM_[A-Z_]+/)) return ""
    req = substr(input, RSTART, RLENGTH); sub(/.*, /, "", req)
    if (req == "DM_DEV_SUSPEND") return input ~ /DM_SUSPEND_FLAG/ ? "suspend" : "resume"
    if (req == "DM_DEV_CREATE") return "create"
    if (req == "DM_TABLE_LOAD") return "load"
    if (req == "DM_DEV_REMOVE") return "remove"
    if (req == "DM_TABLE_CLEAR") return "clear"
    if (req == "DM_DEV_RENAME") return "rename"
    if (req == "DM_TARGET_MSG") return "message"
    return ""
}'

# dm_changes TRACE: "N WHAT DEVICE" for each ioctl of a whole run that
# changes device-mapper, then "N after -" for the first ioctl after the
# last change, if there is one.
dm_changes() {
    awk "$_ioctl_what"'
        /^ioctl\(/ {
            i++; w = what($0)
            if (w == "") next
            dev = "-"; if (match($0, /name="[^"]*"/)) dev = substr($0, RSTART + 6, RLENGTH - 7)
            print i, w, dev; last = i
        }
        END { if (i > last) print last + 1, "after", "-" }' "$1"
}

# nth_change N TRACE: what the Nth ioctl in TRACE does ("query" for none).
nth_change() {
    awk -v n="$1" "$_ioctl_what"'
        /^ioctl\(/ && ++i == n { w = what($0); print w == "" ? "query" : w; exit }' "$2"
}

# held_at N TRACE: true while lvcreate is held entering its Nth ioctl: N
# ioctl lines, the last one without its end.
held_at() {
    [ "$(grep -c '^ioctl(' "$2" 2>/dev/null)" = "$1" ] && [ -n "$(tail -c1 "$2")" ]
}
