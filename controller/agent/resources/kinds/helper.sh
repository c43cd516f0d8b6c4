# clusvc helper library for seed-style user scripts (SPEC §3).
SUCCESS=0
FAIL=1
LOG_EMERG=0
LOG_ALERT=1
LOG_CRIT=2
LOG_ERR=3
LOG_WARNING=4
LOG_NOTICE=5
LOG_INFO=6
LOG_DEBUG=7
DB="$CLUSVC_DB"

# logAndPrint LEVEL MESSAGE...: prints the message; clusvc records it in its
# log and the service's events with that level.
logAndPrint()
{
	local __level="$1"
	shift
	printf '\037%s\037%s\n' "$__level" "$*"
}

# getSvcName DB ID: prints the name of service ID.
getSvcName()
{
	local __id __name
	while IFS=' ' read -r __id __name; do
		if [[ "$__id" == "$2" ]]; then
			printf '%s\n' "$__name"
			return 0
		fi
	done < "$1"
	return 1
}

# getSvcID DB NAME: prints the ID of service NAME.
getSvcID()
{
	local __id __name
	while IFS=' ' read -r __id __name; do
		if [[ "$__name" == "$2" ]]; then
			printf '%s\n' "$__id"
			return 0
		fi
	done < "$1"
	return 1
}

__clusvc_script="$1"
__clusvc_function="$2"
__clusvc_action="$3"
__clusvc_id="$4"
set --
source "$__clusvc_script" || exit 1
"$__clusvc_function" "$__clusvc_action" "$__clusvc_id"
