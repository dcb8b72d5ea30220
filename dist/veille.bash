# bash completion for veille(1). Installed as
# /usr/share/bash-completion/completions/veille; the flag lists follow
# `veille COMMAND --help` (tests/interop/package.test.mjs checks them).
_veille()
{
    local cur prev words cword
    _init_completion || return

    local commands="serve history user users stats check replay alerts outbox rules allow incidents test-alert
        simulate version"
    local serve_flags="--listen --data --rules --ip-db --disable-rule --console --alert --min-severity
        --facility --header --ca --format --template --alert-retry-for --alert-timeout --outbox-max
        --incident-window --incident-update-every --max-body --retention --risk-history
        --risk-min-history --map-size --max-backlog --init --log-level --config --help"

    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    case $prev in
        --data) _filedir -d; return ;;
        --rules|--config|--ca|--template|--ip-db|--file) _filedir; return ;;
        --state) COMPREPLY=($(compgen -W "open acked resolved fp" -- "$cur")); return ;;
        --min-severity|--severity) COMPREPLY=($(compgen -W "info low medium high critical" -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")); return ;;
        --format) COMPREPLY=($(compgen -W "json ocsf cef slack teams" -- "$cur")); return ;;
        --facility) COMPREPLY=($(compgen -W "kern user mail daemon auth syslog lpr news uucp cron authpriv ftp
            local0 local1 local2 local3 local4 local5 local6 local7" -- "$cur")); return ;;
        --alert) COMPREPLY=($(compgen -W "stdout file: syslog syslog: syslog:// syslog+tcp:// webhook:" -- "$cur"))
            compopt -o nospace; return ;;
        --listen|--since|--limit|--user|--ip|--rule|--header|--alert-retry-for|--alert-timeout|--outbox-max|\
        --max-body|--retention|--map-size|--max-backlog|--disable-rule|--console|--incident-window|\
        --incident-update-every|--risk-history|--risk-min-history|--note|--by|--for|--url|--rate) return ;;
    esac

    local flags
    case ${words[1]} in
        serve) flags=$serve_flags ;;
        history) flags="--ip --since --limit --json --data --help" ;;
        user|users|stats) flags="--json --data --help" ;;
        check) _filedir; return ;;
        replay) flags="--rules --data --ip-db --risk-history --risk-min-history --explain --help"
            [[ $cur != -* ]] && { _filedir; return; } ;;
        alerts)
            if [[ $cword -eq 2 && $cur != -* ]]; then
                COMPREPLY=($(compgen -W "show ack resolve false-positive" -- "$cur")); return
            fi
            case ${words[2]} in
                show) flags="--json --rules --data --help" ;;
                ack|resolve) flags="--note --by --data --help" ;;
                false-positive) flags="--note --allow --by --data --help" ;;
                *) flags="--user --ip --rule --since --state --severity --rules --json --data --pending --dead
                    --help" ;;
            esac ;;
        outbox) flags="--dead --json --data --help" ;;
        rules)
            if [[ $cword -eq 2 && $cur != -* ]]; then COMPREPLY=($(compgen -W "show" -- "$cur")); return; fi
            flags="--rules --data --json --help" ;;
        allow)
            if [[ $cword -eq 2 ]]; then COMPREPLY=($(compgen -W "add list rm" -- "$cur")); return; fi
            if [[ $cword -eq 3 && ${words[2]} != list ]]; then COMPREPLY=($(compgen -W "ip user" -- "$cur")); return; fi
            case ${words[2]} in
                add) flags="--rule --for --note --by --data --help" ;;
                list) flags="--json --data --help" ;;
                *) flags="--rule --data --help" ;;
            esac ;;
        incidents)
            if [[ $cword -eq 2 && $cur != -* ]]; then COMPREPLY=($(compgen -W "show" -- "$cur")); return; fi
            flags="--open --incident-window --json --data --help" ;;
        simulate)
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "sample brute-force impossible-travel spray" -- "$cur")); return
            fi
            flags="--url --allow-remote --data --rate --file --help" ;;
        test-alert) flags="--alert --facility --header --ca --format --template --severity --alert-timeout --help" ;;
        version) flags="--help" ;;
        *) return ;;
    esac
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
} &&
    complete -F _veille veille
