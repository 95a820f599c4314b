#!/bin/bash
# Removes Nightjar from this Mac. Run as root (MDM script or sudo).
#
# Usage: uninstall.sh [--purge]
#   --purge  also delete the alert store and host key (/var/db/nightjar), the configuration,
#            rules and logs. Without it they stay, so a reinstall resumes the same alert chain.
#
# The MDM profiles (Full Disk Access, managed background items, agent settings) are removed
# from the MDM, not here; remove them after this script has run.
set -euo pipefail

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

if [ "$(/usr/bin/id -u)" -ne 0 ]; then
  echo "uninstall.sh: must run as root" >&2
  exit 1
fi

for label in com.nightjar.sensor com.nightjar.agent; do
  if /bin/launchctl print "system/$label" >/dev/null 2>&1; then
    /bin/launchctl bootout "system/$label" || echo "uninstall.sh: bootout system/$label failed" >&2
  fi
  /bin/rm -f "/Library/LaunchDaemons/$label.plist"
done

/bin/rm -rf "/Library/Application Support/Nightjar/Nightjar Sensor.app" \
  "/Library/Application Support/Nightjar/bin" \
  "/Library/Application Support/Nightjar/nightjar.toml.default"
/bin/rm -f /usr/local/bin/nightjar-agent /etc/newsyslog.d/nightjar.conf
/bin/rm -rf /var/run/nightjar

if [ "$purge" = 1 ]; then
  /bin/rm -rf /var/db/nightjar "/Library/Application Support/Nightjar" /Library/Logs/Nightjar
fi

/usr/sbin/pkgutil --forget com.nightjar.pkg >/dev/null 2>&1 || true
echo "Nightjar removed$([ "$purge" = 1 ] && echo ' (state purged)')."
