# bash completion for veille(1). Installed as
# /usr/share/bash-completion/completions/veille; the flag lists follow
# `veille COMMAND --help` (tests/interop/package.test.mjs checks them).
_veille()
{
    local cur prev words cword
    _init_completion || return

    local commands="serve history user users stats check replay alerts outbox test-alert version"
    local serve_flags="--listen --data --rules --alert --min-severity --facility --header --ca --format
        --template --alert-retry-for --alert-timeout --outbox-max --max-body --retention --map-size
        --map-resident --init --log-level --config --help"

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    case $prev in
        --data) _filedir -d; return ;;
        --rules|--config|--ca|--template) _filedir; return ;;
        --min-severity|--severity) COMPREPLY=($(compgen -W "info low medium high critical" -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")); return ;;
        --format) COMPREPLY=($(compgen -W "json ocsf cef slack teams" -- "$cur")); return ;;
        --facility) COMPREPLY=($(compgen -W "kern user mail daemon auth syslog lpr news uucp cron authpriv ftp
            local0 local1 local2 local3 local4 local5 local6 local7" -- "$cur")); return ;;
        --alert) COMPREPLY=($(compgen -W "stdout file: syslog syslog: syslog:// syslog+tcp:// webhook:" -- "$cur"))
            compopt -o nospace; return ;;
        --listen|--since|--limit|--user|--ip|--rule|--header|--alert-retry-for|--alert-timeout|--outbox-max|\
        --max-body|--retention|--map-size|--map-resident) return ;;
    esac

    local flags
    case ${words[1]} in
        serve) flags=$serve_flags ;;
        history) flags="--ip --since --limit --json --data --help" ;;
        user|users|stats) flags="--json --data --help" ;;
        check) _filedir; return ;;
        replay) flags="--rules --data --explain --help"; [[ $cur != -* ]] && { _filedir; return; } ;;
        alerts) flags="--user --ip --rule --since --rules --json --data --pending --dead --help" ;;
        outbox) flags="--dead --json --data --help" ;;
        test-alert) flags="--alert --facility --header --ca --format --template --severity --alert-timeout --help" ;;
        *) return ;;
    esac
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
} &&
    complete -F _veille veille
