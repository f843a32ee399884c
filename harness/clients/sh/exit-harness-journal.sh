# exit-harness journal client for POSIX sh (dash, bash, busybox ash, ksh, zsh in sh mode).
#
# Source it, then journal events:
#
#     . /path/to/exit-harness-journal.sh
#     exit_harness_journal marker name=ready
#     mv "$cache.tmp.$$" "$cache" && exit_harness_journal save file="$cache" trigger=exit
#     exit_harness_journal registry len:=2 live:=1
#
# exit_harness_journal KIND [KEY=VALUE | KEY:=NUMBER ...]
#
#   Appends one JSON line {"pid":..,"seq":..,"t_us":..,"kind":KIND,KEY:VALUE,...} to the file
#   named by $EXIT_HARNESS_JOURNAL (see harness/clients/README.md for the protocol). Does
#   nothing when the variable is unset or empty. Always returns 0 and never prints, so it is
#   safe under `set -e` and `set -u`, and in `trap ... EXIT` handlers.
#
#   KEY=VALUE   VALUE is written as a JSON string. Backslash, double quote, newline, tab and
#               carriage return are escaped; other control characters are dropped. Numbers
#               written this way stay strings ("3"): the harness's oracles that read numbers
#               (`registry`'s len and live) need the next form.
#   KEY:=VALUE  VALUE is written as a bare JSON value if it is an integer, true, false or null;
#               anything else is written as a string.
#   file=PATH   a relative PATH is made absolute with $PWD (the protocol wants absolute paths).
#   pid, seq, t_us and kind are the client's own: arguments with those keys are ignored, and
#   an argument without `=` is ignored.
#
# The fields the client writes, and where they fall short of the Rust and Python clients:
#
#   pid   $BASHPID under bash (the real process, also in a subshell); $$ elsewhere, which in a
#         subshell `( ... )`, a pipeline stage or a `$( ... )` is the *parent shell's* pid.
#         A plain POSIX sh has no fork-free way to learn a subshell's own pid; journal from the
#         main shell, or from a separate `sh script` process, when the pid matters.
#   seq   the shell variable _ehj_seq, from 0. A subshell starts from the parent's value and its
#         increments do not come back, so a subshell's events may repeat the parent's seq.
#   t_us  from /proc/uptime (CLOCK_BOOTTIME, 10 ms resolution), in microseconds. It equals the
#         harness's CLOCK_MONOTONIC plus the time the machine spent suspended (normally none),
#         so it is only approximately comparable (within ~10 ms) with the t_us of Rust and
#         Python writers. 0 when /proc/uptime cannot be read. No process is forked for it.
#
# Transport: one `printf` per line into `>> "$EXIT_HARNESS_JOURNAL"` (O_WRONLY | O_APPEND |
# O_CREAT). dash's and bash's printf emit a line shorter than 4096 bytes with one write(2), so
# lines from many processes never interleave. Unlike the Rust and Python clients, the shell's
# `>>` follows a symlink and creates the file when it is missing (today's harness lets the
# first writer create the journal; a harness that creates it first is unaffected).
#
# Lines stay shorter than 4096 bytes: when a line would be longer, every value is cut to a
# shrinking maximum (in bytes; a multi-byte character may be cut, which the harness reads as
# U+FFFD) until it fits, and the line gains "truncated":true. Keys are cut to 64 characters.
#
# The client's variables and helpers all start with _ehj_ (a POSIX function has no locals).

_ehj_seq=0
_ehj_cr=$(printf '\r')

# _ehj_replace STRING FROM TO: sets _ehj_r to STRING with every FROM replaced by TO.
_ehj_replace() {
    _ehj_in=$1
    _ehj_r=
    while :; do
        case $_ehj_in in
            *"$2"*)
                _ehj_r=$_ehj_r${_ehj_in%%"$2"*}$3
                _ehj_in=${_ehj_in#*"$2"}
                ;;
            *)
                _ehj_r=$_ehj_r$_ehj_in
                break
                ;;
        esac
    done
}

# _ehj_escape STRING: sets _ehj_r to STRING as the inside of a JSON string.
_ehj_escape() {
    _ehj_replace "$1" '\' '\\'
    _ehj_replace "$_ehj_r" '"' '\"'
    _ehj_replace "$_ehj_r" '
' '\n'
    _ehj_replace "$_ehj_r" '	' '\t'
    _ehj_replace "$_ehj_r" "$_ehj_cr" '\r'
    # Any other control character (never in ordinary text) is dropped.
    while :; do
        case $_ehj_r in
            *[[:cntrl:]]*) _ehj_r=${_ehj_r%%[[:cntrl:]]*}${_ehj_r#*[[:cntrl:]]} ;;
            *) break ;;
        esac
    done
}

# _ehj_cut STRING MAX: sets _ehj_r to the first MAX bytes of STRING (MAX empty: all of it).
_ehj_cut() {
    if [ -z "$2" ] || [ "${#1}" -le "$2" ]; then
        _ehj_r=$1
    else
        _ehj_r=$(printf '%.*s' "$2" "$1")
    fi
}

# _ehj_body MAX ARGS...: sets _ehj_body to ',"key":value' for every argument, values cut to MAX.
_ehj_body() {
    _ehj_max=$1
    shift
    _ehj_body=
    for _ehj_arg in "$@"; do
        case $_ehj_arg in
            *=*) ;;
            *) continue ;;
        esac
        _ehj_key=${_ehj_arg%%=*}
        _ehj_val=${_ehj_arg#*=}
        _ehj_raw=
        case $_ehj_key in
            *:)
                _ehj_key=${_ehj_key%:}
                case $_ehj_val in
                    true | false | null) _ehj_raw=1 ;;
                    # Not a JSON integer: empty, a stray character or minus, a leading zero.
                    '' | - | *[!0-9-]* | ?*-* | 0?* | -0?*) ;;
                    *) _ehj_raw=1 ;;
                esac
                ;;
        esac
        case $_ehj_key in
            pid | seq | t_us | kind) continue ;;
            file)
                case $_ehj_val in
                    /*) ;;
                    *) _ehj_val=${PWD%/}/$_ehj_val ;;
                esac
                ;;
        esac
        _ehj_cut "$_ehj_key" 64
        _ehj_escape "$_ehj_r"
        _ehj_body=$_ehj_body,\"$_ehj_r\":
        if [ -n "$_ehj_raw" ]; then
            _ehj_body=$_ehj_body$_ehj_val
        else
            _ehj_cut "$_ehj_val" "$_ehj_max"
            _ehj_escape "$_ehj_r"
            _ehj_body=$_ehj_body\"$_ehj_r\"
        fi
    done
}

exit_harness_journal() {
    [ -n "${EXIT_HARNESS_JOURNAL:-}" ] || return 0
    [ "$#" -ge 1 ] || return 0
    _ehj_cut "$1" 256
    _ehj_escape "$_ehj_r"
    _ehj_kind=$_ehj_r
    shift

    _ehj_pid=${BASHPID:-$$}
    _ehj_t=0
    if { read -r _ehj_up _ehj_idle </proc/uptime; } 2>/dev/null; then
        case $_ehj_up in
            *.??)
                # "1234.56" seconds: 1234 * 10^6 + 56 * 10^4 ("1${cs}" - 100 avoids octal "08").
                _ehj_t=$((${_ehj_up%.*} * 1000000 + (1${_ehj_up#*.} - 100) * 10000))
                ;;
        esac
    fi

    # ${#var} counts bytes in dash and characters in bash's UTF-8 locales (up to 4 bytes
    # each): measure which, and bound the line so that it stays under 4096 bytes either way.
    _ehj_probe='é'
    if [ "${#_ehj_probe}" -eq 1 ]; then _ehj_limit=1000; else _ehj_limit=4000; fi

    _ehj_head="{\"pid\":$_ehj_pid,\"seq\":$_ehj_seq,\"t_us\":$_ehj_t,\"kind\":\"$_ehj_kind\""
    _ehj_max=
    _ehj_trunc=
    while :; do
        _ehj_body "$_ehj_max" "$@"
        _ehj_line=$_ehj_head$_ehj_trunc$_ehj_body\}
        [ "${#_ehj_line}" -lt "$_ehj_limit" ] && break
        _ehj_trunc=',"truncated":true'
        if [ -z "$_ehj_max" ]; then
            _ehj_max=$_ehj_limit
        elif [ "$_ehj_max" -gt 0 ]; then
            _ehj_max=$((_ehj_max / 2))
        else
            # Even empty values do not fit (hundreds of fields): keep the fixed fields only.
            _ehj_line=$_ehj_head$_ehj_trunc\}
            break
        fi
    done
    _ehj_seq=$((_ehj_seq + 1))

    # One printf, one write(2), appended.
    { printf '%s\n' "$_ehj_line" >>"$EXIT_HARNESS_JOURNAL"; } 2>/dev/null
    return 0
}
