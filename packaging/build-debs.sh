#!/usr/bin/env bash
# Builds the Debian packages of the server (identity-server, with new-openid-secret and ids-keytool) and
# of the agent (ids-agent) into target/debian/, then checks what they hold (dpkg-deb -c) and, where
# systemd is installed, that systemd accepts their units (systemd-analyze verify).
# Needs cargo-deb (cargo install --locked cargo-deb) and dpkg-deb; see packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p identity-server -p agent -p ids-tools
rm -rf target/assets target/debian
for binary in identity-server agent ids-keytool; do
  "target/release/$binary" generate-assets --out target/assets >/dev/null
done
target/release/new-openid-secret --generate-assets target/assets >/dev/null
cargo deb -p identity-server --no-build --locked
cargo deb -p agent --no-build --locked

server_deb=$(ls target/debian/identity-server_*.deb)
agent_deb=$(ls target/debian/ids-agent_*.deb)

# Every path listed must be in the package (the leading ./ of dpkg-deb -c is dropped).
check() {
  local deb=$1
  shift
  local listing
  listing=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#')
  local missing=0
  for path in "$@"; do
    if ! grep -qxF "$path" <<<"$listing"; then
      echo "$deb: missing $path" >&2
      missing=1
    fi
  done
  if [ "$missing" -ne 0 ]; then
    echo "--- $deb holds:" >&2
    echo "$listing" >&2
    exit 1
  fi
  echo "$deb: $(wc -l <<<"$listing") entries, the $# expected ones present"
}

check "$server_deb" \
  /usr/bin/identity-server /usr/bin/new-openid-secret /usr/bin/ids-keytool \
  /usr/lib/systemd/system/identity-server.service \
  /usr/lib/sysusers.d/identity-server.conf \
  /etc/identity-server/appsettings.json /etc/identity-server/Conf/README.txt \
  /usr/share/man/man1/identity-server.1.gz /usr/share/man/man1/identity-server-serve.1.gz \
  /usr/share/man/man1/identity-server-health.1.gz /usr/share/man/man1/new-openid-secret.1.gz \
  /usr/share/man/man1/ids-keytool.1.gz \
  /usr/share/bash-completion/completions/identity-server \
  /usr/share/zsh/vendor-completions/_identity-server \
  /usr/share/fish/vendor_completions.d/identity-server.fish \
  /usr/share/doc/identity-server/docs/monitoring/alerts.yml \
  /usr/share/doc/identity-server/docs/monitoring/grafana-dashboard.json
check "$agent_deb" \
  /usr/bin/agent \
  /usr/lib/systemd/system/ids-agent.service \
  /usr/lib/sysusers.d/ids-agent.conf \
  /etc/ids-agent/appsettings.json /etc/ids-agent/appsettings.agent.json \
  /usr/share/man/man1/agent.1.gz /usr/share/man/man1/agent-run.1.gz \
  /usr/share/bash-completion/completions/agent \
  /usr/share/zsh/vendor-completions/_agent \
  /usr/share/fish/vendor_completions.d/agent.fish

# The agent package must not carry the server's binaries, nor the server package the agent.
if dpkg-deb -c "$agent_deb" | grep -q 'usr/bin/identity-server'; then
  echo "$agent_deb: holds the server" >&2
  exit 1
fi
# The maintainer scripts as packaged (with cargo-deb's systemd snippets in place of the DEBHELPER
# token) are valid sh: a token left in a comment once broke postrm.
scripts=$(mktemp -d)
for deb in "$server_deb" "$agent_deb"; do
  rm -rf "$scripts/control"
  dpkg-deb -e "$deb" "$scripts/control"
  for script in postinst postrm preinst prerm; do
    if [ -f "$scripts/control/$script" ]; then
      sh -n "$scripts/control/$script" || { echo "$deb: $script is not valid sh" >&2; exit 1; }
    fi
  done
done
rm -rf "$scripts"
echo "maintainer scripts: valid sh"
dpkg-deb -I "$server_deb" | grep -E '^ (Package|Version|Depends):'
dpkg-deb -I "$agent_deb" | grep -E '^ (Package|Version|Depends):'

if command -v systemd-analyze >/dev/null 2>&1; then
  # The units as packaged, with the packaged binaries in place of /usr/bin (not installed here).
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  for deb in "$server_deb" "$agent_deb"; do
    dpkg-deb -x "$deb" "$root"
  done
  for unit in identity-server ids-agent; do
    sed "s#/usr/bin/#$root/usr/bin/#g" "$root/usr/lib/systemd/system/$unit.service" >"$root/$unit.service"
  done
  (cd "$root" && systemd-analyze verify ./identity-server.service ./ids-agent.service)
  echo "systemd-analyze verify: both units accepted"
else
  echo "systemd-analyze not installed: the units were not verified"
fi
