#!/usr/bin/env bash
# Fills the placeholders of the Nightjar configuration profiles and gives every payload a fresh
# PayloadUUID, so each organisation's profiles are distinct from the templates and from each
# other's.
#
# Usage: packaging/macos/fill-profiles.sh --team-id TEAMID (--upload-url URL | --fleet-server URL)
#            [--enroll-token TOKEN] [--policy-public-key KEY] [--ca-file PATH] [--host-id VALUE]
#            [--organization NAME]
#            [--allow-insecure-http] [--out DIR]
#
#   --team-id      Apple Developer Team ID that signs Nightjar (10 characters)   $NIGHTJAR_TEAM_ID
#   --upload-url   collector endpoint, https://...; omitted: the agent uploads to the fleet
#                  server's /v1/alerts                                          $NIGHTJAR_UPLOAD_URL
#   --fleet-server the central server's origin, https://host[:port]; omitted: no enrolment
#                  or heartbeat (upload alone)                                $NIGHTJAR_FLEET_SERVER
#   --enroll-token an enrolment token from `nightjar-server token create --uses N`, used
#                  once per Mac; omitted: the key is left out                $NIGHTJAR_ENROLL_TOKEN
#   --policy-public-key  the server's policy key, the "public_key" of
#                  `nightjar-server policy key --json` (base64 of 32 bytes); the agent runs
#                  fleet policies signed by it alone; omitted: no policy is accepted
#                                                                     $NIGHTJAR_POLICY_PUBLIC_KEY
#   --ca-file      on-device path of an extra collector CA (PEM); omitted: the key is left out
#                                                                              $NIGHTJAR_CA_FILE
#   --host-id      host id, typically an MDM variable ($SERIALNUMBER in Jamf, $SERIAL_NUMBER
#                  in Kandji, {{serialnumber}} in Intune); omitted: the agent uses the
#                  hardware UUID                                               $NIGHTJAR_HOST_ID
#   --organization shown in System Settings (default: Nightjar)          $NIGHTJAR_ORGANIZATION
#   --allow-insecure-http  permit a plain http:// collector (test fleets only)
#   --out          output directory (default: ./nightjar-profiles)
#
# The filled profiles are validated with `plutil -lint` (macOS) or Python's plistlib.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
templates="$here/profiles"

team_id="${NIGHTJAR_TEAM_ID:-}"
upload_url="${NIGHTJAR_UPLOAD_URL:-}"
fleet_server="${NIGHTJAR_FLEET_SERVER:-}"
enroll_token="${NIGHTJAR_ENROLL_TOKEN:-}"
policy_public_key="${NIGHTJAR_POLICY_PUBLIC_KEY:-}"
ca_file="${NIGHTJAR_CA_FILE:-}"
host_id="${NIGHTJAR_HOST_ID:-}"
organization="${NIGHTJAR_ORGANIZATION:-Nightjar}"
allow_insecure=0
out="./nightjar-profiles"

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

die() {
  echo "fill-profiles: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --team-id) [ $# -ge 2 ] || usage; team_id="$2"; shift 2 ;;
    --upload-url) [ $# -ge 2 ] || usage; upload_url="$2"; shift 2 ;;
    --fleet-server) [ $# -ge 2 ] || usage; fleet_server="$2"; shift 2 ;;
    --enroll-token) [ $# -ge 2 ] || usage; enroll_token="$2"; shift 2 ;;
    --policy-public-key) [ $# -ge 2 ] || usage; policy_public_key="$2"; shift 2 ;;
    --ca-file) [ $# -ge 2 ] || usage; ca_file="$2"; shift 2 ;;
    --host-id) [ $# -ge 2 ] || usage; host_id="$2"; shift 2 ;;
    --organization) [ $# -ge 2 ] || usage; organization="$2"; shift 2 ;;
    --allow-insecure-http) allow_insecure=1; shift ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done

[[ "$team_id" =~ ^[A-Z0-9]{10}$ ]] || die "--team-id: expected 10 upper-case letters or digits, got '$team_id'"
check_url() { # NAME VALUE
  if [[ "$2" =~ ^https://[^[:space:]]+$ ]]; then
    :
  elif [[ "$2" =~ ^http://[^[:space:]]+$ ]]; then
    [ "$allow_insecure" = 1 ] || die "$1: plain http:// needs --allow-insecure-http"
  else
    die "$1: expected https://..., got '$2'"
  fi
}
[ -n "$upload_url" ] || [ -n "$fleet_server" ] || die "--upload-url or --fleet-server is required"
[ -z "$upload_url" ] || check_url --upload-url "$upload_url"
[ -z "$fleet_server" ] || check_url --fleet-server "$fleet_server"
if [ -n "$enroll_token" ]; then
  [ -n "$fleet_server" ] || die "--enroll-token needs --fleet-server"
  [[ "$enroll_token" =~ ^[A-Za-z0-9_-]+$ ]] || die "--enroll-token: expected a token from nightjar-server token create"
fi
if [ -n "$policy_public_key" ]; then
  [ -n "$fleet_server" ] || die "--policy-public-key needs --fleet-server"
  # Standard base64 of 32 bytes: 43 characters and one '=' of padding.
  [[ "$policy_public_key" =~ ^[A-Za-z0-9+/]{43}=$ ]] \
    || die "--policy-public-key: expected the base64 public_key of 'nightjar-server policy key --json'"
fi
if [ -n "$ca_file" ] && [[ "$ca_file" != /* ]]; then
  die "--ca-file: must be an absolute path on the Macs, got '$ca_file'"
fi
[ -n "$organization" ] || die "--organization must not be empty"

new_uuid() {
  if command -v uuidgen >/dev/null 2>&1; then
    uuidgen
  elif [ -r /proc/sys/kernel/random/uuid ]; then
    cat /proc/sys/kernel/random/uuid
  else
    python3 -c 'import uuid; print(uuid.uuid4())'
  fi
}

uuids="$(mktemp)"
trap 'rm -f "$uuids"' EXIT

mkdir -p "$out"
export NJ_TEAM_ID NJ_UPLOAD_URL NJ_FLEET_SERVER NJ_ENROLL_TOKEN NJ_POLICY_KEY NJ_CA_FILE NJ_HOST_ID NJ_ORG NJ_INSECURE NJ_UUIDS
NJ_TEAM_ID="$team_id"
NJ_UPLOAD_URL="$upload_url"
NJ_FLEET_SERVER="$fleet_server"
NJ_ENROLL_TOKEN="$enroll_token"
NJ_POLICY_KEY="$policy_public_key"
NJ_CA_FILE="$ca_file"
NJ_HOST_ID="$host_id"
NJ_ORG="$organization"
NJ_INSECURE="$allow_insecure"
NJ_UUIDS="$uuids"

for template in "$templates"/*.mobileconfig; do
  target="$out/$(basename "$template")"
  # One fresh UUID per PayloadUUID of this template; awk reads them in order.
  count=$(grep -c '<key>PayloadUUID</key>' "$template")
  for _ in $(seq "$count"); do
    new_uuid | tr '[:lower:]' '[:upper:]'
  done >"$uuids"
  awk '
    function replace(s, from, to,   i, r) {
      r = ""
      while ((i = index(s, from)) > 0) {
        r = r substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
      }
      return r s
    }
    function esc(s) {
      s = replace(s, "&", "&amp;")
      s = replace(s, "<", "&lt;")
      s = replace(s, ">", "&gt;")
      return s
    }
    skip > 0 { skip--; next }
    uuid_next {
      if ((getline u < ENVIRON["NJ_UUIDS"]) <= 0) { print "out of UUIDs" > "/dev/stderr"; exit 1 }
      sub(/<string>[^<]*<\/string>/, "<string>" u "</string>")
      uuid_next = 0
    }
    insecure_next {
      sub(/<(true|false)\/>/, ENVIRON["NJ_INSECURE"] == "1" ? "<true/>" : "<false/>")
      insecure_next = 0
    }
    /<key>PayloadUUID<\/key>/ { uuid_next = 1 }
    /<key>allow_insecure_http<\/key>/ { insecure_next = 1 }
    /<key>upload_ca_file<\/key>/ && ENVIRON["NJ_CA_FILE"] == "" { skip = 1; next }
    /<key>host_id<\/key>/ && ENVIRON["NJ_HOST_ID"] == "" { skip = 1; next }
    /<key>upload_url<\/key>/ && ENVIRON["NJ_UPLOAD_URL"] == "" { skip = 1; next }
    /<key>fleet_server<\/key>/ && ENVIRON["NJ_FLEET_SERVER"] == "" { skip = 1; next }
    /<key>enroll_token<\/key>/ && ENVIRON["NJ_ENROLL_TOKEN"] == "" { skip = 1; next }
    /<key>policy_public_key<\/key>/ && ENVIRON["NJ_POLICY_KEY"] == "" { skip = 1; next }
    {
      line = $0
      line = replace(line, "__TEAM_ID__", ENVIRON["NJ_TEAM_ID"])
      line = replace(line, "__UPLOAD_URL__", esc(ENVIRON["NJ_UPLOAD_URL"]))
      line = replace(line, "__FLEET_SERVER__", esc(ENVIRON["NJ_FLEET_SERVER"]))
      line = replace(line, "__ENROLL_TOKEN__", esc(ENVIRON["NJ_ENROLL_TOKEN"]))
      line = replace(line, "__POLICY_PUBLIC_KEY__", esc(ENVIRON["NJ_POLICY_KEY"]))
      line = replace(line, "__CA_FILE__", esc(ENVIRON["NJ_CA_FILE"]))
      line = replace(line, "__HOST_ID__", esc(ENVIRON["NJ_HOST_ID"]))
      line = replace(line, "__ORGANIZATION__", esc(ENVIRON["NJ_ORG"]))
      print line
    }
  ' "$template" >"$target"

  if grep -n '__[A-Z_]*__' "$target" >&2; then
    die "$target: placeholders left unfilled (above)"
  fi
  if command -v plutil >/dev/null 2>&1; then
    plutil -lint "$target" >&2 || die "$target: not a valid property list"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import plistlib, sys; plistlib.load(open(sys.argv[1], "rb"))' "$target" \
      || die "$target: not a valid property list"
  else
    echo "fill-profiles: warning: neither plutil nor python3 found; $target not validated" >&2
  fi
  echo "$target"
done
