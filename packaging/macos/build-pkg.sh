#!/usr/bin/env bash
# Builds the Nightjar installer package for macOS: both daemons (universal by default), the
# sensor wrapped in "Nightjar Sensor.app" so its embedded provisioning profile can authorise
# the Endpoint Security entitlement, launchd plists, default config and install scripts.
# Signs with hardened runtime, notarizes and staples when identities are given.
#
# Usage: packaging/macos/build-pkg.sh [options]
#   --version V                 package version (default: the workspace version)
#   --arch universal|arm64|x86_64                                  (default: universal)
#   --app-identity NAME         "Developer ID Application: Org (TEAMID)" $NIGHTJAR_APP_IDENTITY
#   --installer-identity NAME   "Developer ID Installer: Org (TEAMID)"
#                                                            $NIGHTJAR_INSTALLER_IDENTITY
#   --team-id TEAMID                                                   $NIGHTJAR_TEAM_ID
#   --provisioning-profile F    Developer ID profile for com.nightjar.sensor carrying the
#                               Endpoint Security entitlement $NIGHTJAR_PROVISIONING_PROFILE;
#                               without it the sensor is signed without the entitlement and
#                               captures through eslogger
#   --notary-profile NAME       keychain profile from `xcrun notarytool store-credentials`
#                                                                $NIGHTJAR_NOTARY_PROFILE
#   --unsigned                  ad-hoc signatures, no ES entitlement, no notarization: for CI,
#                               lab Macs and fleets without Apple's ES entitlement
#   --sensor-source SRC         the sensor's --source in its launchd job: auto (= Endpoint
#                               Security) or eslogger; default auto with a provisioning
#                               profile, else eslogger (no entitlement, so no ES client)
#   --no-build                  package binaries already built under target/
#   --out DIR                   output directory (default: target/macos)
# The last stdout line is the path of the package.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

version=""
arch="universal"
app_identity="${NIGHTJAR_APP_IDENTITY:-}"
installer_identity="${NIGHTJAR_INSTALLER_IDENTITY:-}"
team_id="${NIGHTJAR_TEAM_ID:-}"
provisioning_profile="${NIGHTJAR_PROVISIONING_PROFILE:-}"
notary_profile="${NIGHTJAR_NOTARY_PROFILE:-}"
unsigned=0
sensor_source=""
build=1
out="$repo/target/macos"

die() {
  echo "build-pkg: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version="$2"; shift 2 ;;
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; arch="$2"; shift 2 ;;
    --app-identity) [ $# -ge 2 ] || die "--app-identity needs a value"; app_identity="$2"; shift 2 ;;
    --installer-identity) [ $# -ge 2 ] || die "--installer-identity needs a value"; installer_identity="$2"; shift 2 ;;
    --team-id) [ $# -ge 2 ] || die "--team-id needs a value"; team_id="$2"; shift 2 ;;
    --provisioning-profile) [ $# -ge 2 ] || die "--provisioning-profile needs a value"; provisioning_profile="$2"; shift 2 ;;
    --notary-profile) [ $# -ge 2 ] || die "--notary-profile needs a value"; notary_profile="$2"; shift 2 ;;
    --unsigned) unsigned=1; shift ;;
    --sensor-source) [ $# -ge 2 ] || die "--sensor-source needs a value"; sensor_source="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

[ "$(uname -s)" = Darwin ] || die "runs on macOS only (pkgbuild, productbuild, codesign)"

if [ -z "$version" ]; then
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)"
fi
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*([.-][0-9A-Za-z.]+)?$ ]] || die "bad --version '$version'"

case "$arch" in
  universal) triples=(aarch64-apple-darwin x86_64-apple-darwin) ;;
  arm64) triples=(aarch64-apple-darwin) ;;
  x86_64) triples=(x86_64-apple-darwin) ;;
  *) die "--arch: expected universal, arm64 or x86_64, got '$arch'" ;;
esac

with_es=0
if [ "$unsigned" = 0 ] && [ -n "$provisioning_profile" ]; then
  with_es=1
fi
if [ -z "$sensor_source" ]; then
  if [ "$with_es" = 1 ]; then sensor_source=auto; else sensor_source=eslogger; fi
fi
case "$sensor_source" in
  auto|endpoint-security|eslogger) ;;
  *) die "--sensor-source: expected auto, endpoint-security or eslogger, got '$sensor_source'" ;;
esac

if [ "$unsigned" = 0 ]; then
  [ -n "$app_identity" ] || die "--app-identity is required (or --unsigned)"
  [ -n "$installer_identity" ] || die "--installer-identity is required (or --unsigned)"
  [[ "$team_id" =~ ^[A-Z0-9]{10}$ ]] || die "--team-id: expected a 10-character Team ID"
  if [ "$with_es" = 1 ]; then
    [ -f "$provisioning_profile" ] || die "--provisioning-profile: no such file '$provisioning_profile'"
  else
    echo "build-pkg: no --provisioning-profile: the sensor gets no Endpoint Security entitlement" >&2
  fi
  if [ -z "$notary_profile" ]; then
    echo "build-pkg: warning: no --notary-profile; the package will not be notarized" >&2
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Binaries.
if [ "$build" = 1 ]; then
  for triple in "${triples[@]}"; do
    (cd "$repo" && cargo build --release --locked --target "$triple" \
      -p nightjar-sensor -p nightjar-agent) >&2
  done
fi
for bin in nightjar-sensor nightjar-agent; do
  inputs=()
  for triple in "${triples[@]}"; do
    f="$repo/target/$triple/release/$bin"
    [ -x "$f" ] || die "$f is missing (build it, or drop --no-build)"
    inputs+=("$f")
  done
  lipo -create -output "$work/$bin" "${inputs[@]}"
done

# 2. Payload, laid out as it lands on disk.
root="$work/root"
support="$root/Library/Application Support/Nightjar"
app="$support/Nightjar Sensor.app"
install -d -m 0755 "$app/Contents/MacOS" "$support/bin" "$root/Library/LaunchDaemons" \
  "$root/private/etc/newsyslog.d"
sed "s/__VERSION__/$version/g" "$here/bundle/Info.plist" >"$app/Contents/Info.plist"
install -m 0755 "$work/nightjar-sensor" "$app/Contents/MacOS/nightjar-sensor"
install -m 0755 "$work/nightjar-agent" "$support/bin/nightjar-agent"
install -m 0644 "$here/launchd/com.nightjar.agent.plist" "$root/Library/LaunchDaemons/"
# The template's `--source auto` becomes the chosen source.
awk -v src="$sensor_source" '
  prev ~ /<string>--source<\/string>/ { sub(/<string>auto<\/string>/, "<string>" src "</string>") }
  { print; prev = $0 }
' "$here/launchd/com.nightjar.sensor.plist" >"$root/Library/LaunchDaemons/com.nightjar.sensor.plist"
chmod 0644 "$root/Library/LaunchDaemons/com.nightjar.sensor.plist"
grep -q "<string>$sensor_source</string>" "$root/Library/LaunchDaemons/com.nightjar.sensor.plist" \
  || die "could not set the sensor source in its launchd plist"
install -m 0644 "$here/nightjar.toml" "$support/nightjar.toml.default"
install -m 0644 "$here/newsyslog.d/nightjar.conf" "$root/private/etc/newsyslog.d/nightjar.conf"
plutil -lint "$app/Contents/Info.plist" "$root"/Library/LaunchDaemons/*.plist >&2

# 3. Code signatures. The agent claims no entitlement; the sensor claims the Endpoint Security
#    client entitlement, authorised by the profile embedded in its bundle.
if [ "$unsigned" = 1 ]; then
  codesign --force --sign - --identifier com.nightjar.agent "$support/bin/nightjar-agent"
  codesign --force --sign - "$app"
elif [ "$with_es" = 1 ]; then
  security cms -D -i "$provisioning_profile" >"$work/profile.plist"
  grep -q "com.apple.developer.endpoint-security.client" "$work/profile.plist" \
    || die "$provisioning_profile does not authorise com.apple.developer.endpoint-security.client"
  grep -q "$team_id.com.nightjar.sensor" "$work/profile.plist" \
    || die "$provisioning_profile is not for the App ID $team_id.com.nightjar.sensor"
  cp "$provisioning_profile" "$app/Contents/embedded.provisionprofile"
  sed "s/__TEAM_ID__/$team_id/g" "$here/bundle/nightjar-sensor.entitlements" >"$work/sensor.entitlements"
  plutil -lint "$work/sensor.entitlements" >&2

  codesign --force --timestamp --options runtime --identifier com.nightjar.agent \
    --sign "$app_identity" "$support/bin/nightjar-agent"
  codesign --force --timestamp --options runtime --entitlements "$work/sensor.entitlements" \
    --sign "$app_identity" "$app"
else
  codesign --force --timestamp --options runtime --identifier com.nightjar.agent \
    --sign "$app_identity" "$support/bin/nightjar-agent"
  codesign --force --timestamp --options runtime --sign "$app_identity" "$app"
fi
codesign --verify --strict --verbose=2 "$support/bin/nightjar-agent" >&2
codesign --verify --strict --verbose=2 "$app" >&2

# 4. Component package. The sensor bundle must stay where the launchd plist points, so it is
#    marked non-relocatable (pkgbuild would otherwise follow a moved copy of it).
pkgbuild --analyze --root "$root" "$work/component.plist" >&2
i=0
while plutil -extract "$i" xml1 -o /dev/null "$work/component.plist" 2>/dev/null; do
  plutil -replace "$i.BundleIsRelocatable" -bool NO "$work/component.plist"
  i=$((i + 1))
done
install -d "$work/scripts"
install -m 0755 "$here/scripts/preinstall" "$here/scripts/postinstall" "$work/scripts/"
pkgbuild --root "$root" --component-plist "$work/component.plist" --scripts "$work/scripts" \
  --identifier com.nightjar.pkg --version "$version" --install-location / \
  "$work/nightjar-component.pkg" >&2

# 5. Product archive (what MDMs accept), signed with the installer identity.
sed "s/__VERSION__/$version/g" "$here/distribution.xml" >"$work/distribution.xml"
mkdir -p "$out"
pkg="$out/Nightjar-$version.pkg"
sign_args=()
if [ "$unsigned" = 0 ]; then
  sign_args=(--sign "$installer_identity" --timestamp)
fi
productbuild --distribution "$work/distribution.xml" --package-path "$work" \
  --version "$version" ${sign_args[@]+"${sign_args[@]}"} "$pkg" >&2

# 6. Notarization and stapling.
if [ "$unsigned" = 0 ] && [ -n "$notary_profile" ]; then
  result="$(xcrun notarytool submit "$pkg" --keychain-profile "$notary_profile" --wait \
    --output-format json)"
  status="$(printf '%s' "$result" | plutil -extract status raw -o - -)"
  if [ "$status" != "Accepted" ]; then
    id="$(printf '%s' "$result" | plutil -extract id raw -o - -)"
    xcrun notarytool log "$id" --keychain-profile "$notary_profile" >&2 || true
    die "notarization of $pkg ended with status '$status'"
  fi
  xcrun stapler staple "$pkg" >&2
  xcrun stapler validate "$pkg" >&2
  spctl --assess --type install --verbose=2 "$pkg" >&2
fi

pkgutil --payload-files "$pkg" >&2
echo "$pkg"
