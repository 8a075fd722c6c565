# bash completion for devstreams(1): subcommands and options.
_devstreams() {
  local cur=${COMP_WORDS[COMP_CWORD]} words="${COMP_WORDS[*]:1:COMP_CWORD-1}" list
  case " $words " in
    *" hub device "*) list="add list show remove rotate-key disable enable --json --agent-config --allow --secondary" ;;
    *" hub "*) list="device streams -c --config --limit --json" ;;
    *" forward "*) list="list add rm --control --json" ;;
    *" connect "*) list="" ;;
    *" status "* | *" streams "* | *" devices "*) list="--control --json" ;;
    *) list="connect status streams devices forward hub --socks --help" ;;
  esac
  case ${COMP_WORDS[COMP_CWORD-1]} in
    -c | --config | --agent-config | --control) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  COMPREPLY=($(compgen -W "$list" -- "$cur"))
}
complete -F _devstreams devstreams
