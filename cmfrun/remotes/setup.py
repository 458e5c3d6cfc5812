"""``cmf init``: a project's default DVC remote, CMF server and graph settings.

The remote is configured through DVC's own config code (``dvc.config.Config.edit``,
what ``dvc remote add -d`` and ``dvc remote modify --local`` run), under CMF's
remote names (``local-storage``, ``minio``, ``amazons3``, ``ssh-storage``,
``osdf``). Secrets (keys, passwords, tokens) go only into DVC's git-ignored
``.dvc/config.local``; the Neo4j password into the git-ignored
``.cmfconfig.local``. Everything else goes into ``.dvc/config`` (the remote) and
``.cmfconfig`` (``[cmfrun]`` keys ``remote``, ``remote_type``,
``cmf_server_url``, ``neo4j_uri``, ``neo4j_user``). Running it again updates
the same entries: the remote is replaced, never added twice.

Other parts of cmfrun read the settings back with :func:`read_init_config`.

Example::

    init_project(Path("."), RemoteSpec.build("local", path="/data/cmf-store"))
    print(read_init_config(Path(".")).remote_url)
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from cmfrun import config, gitinfo, proc
from cmfrun.errors import InputFileError, UsageError

#: ``cmf init`` sub-command -> the DVC remote name CMF gives it.
REMOTE_NAMES: Mapping[str, str] = {
    "local": "local-storage",
    "minioS3": "minio",
    "amazonS3": "amazons3",
    "sshremote": "ssh-storage",
    "osdfremote": "osdf",
}
#: DVC remote options that are credentials: written only to ``.dvc/config.local``.
SECRET_OPTIONS = frozenset({"password", "passphrase", "secret_access_key", "session_token", "access_key_id", "token"})
LOCAL_CONFIG = ".cmfconfig.local"
DEFAULT_SERVER_URL = "http://127.0.0.1:80"


@dataclass(frozen=True)
class RemoteSpec:
    """A DVC remote to configure: ``options`` go to ``.dvc/config``, ``secrets`` to ``config.local``."""

    type: str
    name: str
    url: str
    options: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    settings: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        type: str,
        *,
        path: str = "",
        url: str = "",
        endpoint_url: str = "",
        access_key_id: str = "",
        secret_key: str = "",
        session_token: str = "",
        user: str = "",
        password: str = "",
        port: int = 0,
        keyfile: str = "",
        osdf_path: str = "",
        osdf_cache: str = "",
        access_token: str = "",
        key_id: str = "",
        key_path: str = "",
        key_issuer: str = "",
    ) -> "RemoteSpec":
        """Check the arguments of one ``cmf init`` sub-command and turn them into a remote."""
        if type not in REMOTE_NAMES:
            raise UsageError(f"unknown remote type {type!r}: use one of {', '.join(REMOTE_NAMES)}")
        name = REMOTE_NAMES[type]
        options: Dict[str, str] = {}
        if type == "local":
            _need(type, path=path)
            return cls(type, name, os.path.abspath(os.path.expanduser(path)))
        if type in ("minioS3", "amazonS3"):
            _need(type, url=url, access_key_id=access_key_id, secret_key=secret_key, **({"endpoint_url": endpoint_url} if type == "minioS3" else {}))
            if not url.startswith("s3://"):
                raise UsageError(f"{type} --url must be an s3://bucket/path URL, not {_scrub_url(url)!r}")
            if endpoint_url:
                options["endpointurl"] = endpoint_url
            secrets = {"access_key_id": access_key_id, "secret_access_key": secret_key}
            if session_token:
                secrets["session_token"] = session_token
            return cls(type, name, url, options, secrets)
        if type == "sshremote":
            _need(type, path=path)
            parts = urlsplit(path)
            if parts.scheme != "ssh" or not parts.hostname:
                raise UsageError(f"sshremote --path must be ssh://host/absolute/path, not {_scrub_url(path)!r}")
            if parts.password:
                raise UsageError("sshremote --path must not carry a password: give --password (kept in .dvc/config.local)")
            if user:
                options["user"] = user
            if port:
                options["port"] = str(int(port))
            if keyfile:
                options["keyfile"] = os.path.abspath(os.path.expanduser(keyfile))
            return cls(type, name, path, options, {"password": password} if password else {})
        # osdfremote: an HTTP(S) remote that PUTs objects with a bearer token (CMF's OSDF setup).
        target = osdf_path or path or url
        _need(type, path=target)
        if urlsplit(target).scheme not in ("http", "https"):
            raise UsageError(f"osdfremote --path must be an http(s):// URL, not {_scrub_url(target)!r}")
        if key_id or key_path or key_issuer:
            raise UsageError(
                "osdfremote: making a token from --key-id/--key-path/--key-issuer is not supported; give --access-token TOKEN|FILE"
            )
        token = access_token
        if token and os.path.isfile(token):
            token = Path(token).read_text(encoding="utf-8").strip()
        options = {"method": "PUT", "auth": "custom", "custom_auth_header": "Authorization", "ask_password": "false"}
        secrets = {"password": f"Bearer {token}"} if token else {}
        # The OSDF cache URL is for readers outside DVC (CMF's tools): kept in .cmfconfig.
        return cls(type, name, target, options, secrets, {"osdf_cache": osdf_cache} if osdf_cache else {})


def _need(type: str, **values: str) -> None:
    missing = [k for k, v in values.items() if not v]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise UsageError(f"cmf init {type} needs {flags}")


def _scrub_url(url: str) -> str:
    """``url`` without a password in its user info (for messages and ``show``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}" if user else netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class InitConfig:
    """What ``cmf init`` configured, read back from ``.cmfconfig``, DVC's config and git.

    ``remote_options`` holds the non-secret DVC options; ``secrets_set`` only the
    *names* of the secret ones. ``neo4j_password`` is read from the git-ignored
    ``.cmfconfig.local`` and kept out of ``repr``.
    """

    root: str
    remote_name: str = ""
    remote_type: str = ""
    remote_url: str = ""
    remote_options: Mapping[str, str] = field(default_factory=dict)
    secrets_set: Tuple[str, ...] = ()
    git_remote_url: str = ""
    cmf_server_url: str = ""
    neo4j_uri: str = ""
    neo4j_user: str = ""
    neo4j_password: str = field(default="", repr=False)

    def public(self) -> Dict[str, Any]:
        """Everything but the Neo4j password (which shows as set or not): safe to print."""
        return {
            "root": self.root,
            "remote_name": self.remote_name,
            "remote_type": self.remote_type,
            "remote_url": _scrub_url(self.remote_url),
            "remote_options": dict(self.remote_options),
            "secrets_set": list(self.secrets_set),
            "git_remote_url": _scrub_url(self.git_remote_url),
            "cmf_server_url": self.cmf_server_url,
            "neo4j_uri": self.neo4j_uri,
            "neo4j_user": self.neo4j_user,
            "neo4j_password_set": bool(self.neo4j_password),
        }


def _type_of(url: str, name: str) -> str:
    for kind, remote in REMOTE_NAMES.items():
        if remote == name:
            return kind
    scheme = urlsplit(url).scheme
    return {"s3": "amazonS3", "ssh": "sshremote", "http": "osdfremote", "https": "osdfremote", "": "local"}.get(scheme, scheme)


def _dvc_config(root: Path) -> Any:
    from dvc.config import Config, ConfigError

    try:
        return Config(dvc_dir=str(root / ".dvc"), validate=False)
    except ConfigError as exc:
        raise InputFileError(f"{root / '.dvc' / 'config'}: {str(exc).splitlines()[0]}") from None


def read_init_config(root: Path) -> InitConfig:
    """The settings ``cmf init`` wrote for the project at ``root`` (empty fields when unset).

    Cheap when there is no ``.dvc`` folder (DVC is not imported then).
    """
    root = Path(root)
    values = config.read_file(root)
    local = _read_local(root)
    name = url = ""
    options: Dict[str, str] = {}
    secrets: Tuple[str, ...] = ()
    if (root / ".dvc").is_dir():
        merged = _dvc_config(root).read()
        name = str(merged.get("core", {}).get("remote", "") or values.get("remote", ""))
        remote = dict(merged.get("remote", {}).get(name, {})) if name else {}
        url = str(remote.pop("url", ""))
        options = {k: str(v) for k, v in remote.items() if k not in SECRET_OPTIONS}
        secrets = tuple(sorted(k for k in remote if k in SECRET_OPTIONS))
    return InitConfig(
        root=str(root),
        remote_name=name,
        remote_type=values.get("remote_type", "") or (_type_of(url, name) if name else ""),
        remote_url=url,
        remote_options=options,
        secrets_set=secrets,
        git_remote_url=gitinfo.remote_url(root) if (root / ".git").exists() else "",
        cmf_server_url=values.get("cmf_server_url", ""),
        neo4j_uri=values.get("neo4j_uri", ""),
        neo4j_user=values.get("neo4j_user", ""),
        neo4j_password=local.get("neo4j_password", ""),
    )


def _read_local(root: Path) -> Dict[str, str]:
    path = root / LOCAL_CONFIG
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        raise InputFileError(f"{path}: not a valid config file") from None
    return dict(parser[config.SECTION]) if parser.has_section(config.SECTION) else {}


def _write_private(path: Path, values: Mapping[str, str]) -> None:
    """Merge ``values`` into the ``[cmfrun]`` section of a private (0600) INI file, atomically."""
    parser = configparser.ConfigParser(interpolation=None)
    if path.is_file():
        parser.read(path, encoding="utf-8")
    if not parser.has_section(config.SECTION):
        parser.add_section(config.SECTION)
    for key, value in values.items():
        parser[config.SECTION][key] = value
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        parser.write(fh)
    os.replace(tmp, path)


def _ensure_ignored(root: Path, pattern: str) -> None:
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    if pattern in lines or "/" + pattern in lines:
        return
    with open(gitignore, "a", encoding="utf-8") as fh:
        if lines and lines[-1] != "":
            fh.write("\n")
        fh.write(f"/{pattern}\n")


def _ensure_git(root: Path, git_remote_url: str) -> None:
    if not (root / ".git").exists():
        proc.capture(["git", "init", "-q"], cwd=root)
    if not git_remote_url:
        return
    current = gitinfo.remote_url(root)
    names = proc.capture(["git", "remote"], cwd=root).stdout.split()
    if "origin" in names:
        if current != git_remote_url:
            proc.capture(["git", "remote", "set-url", "origin", git_remote_url], cwd=root)
    else:
        proc.capture(["git", "remote", "add", "origin", git_remote_url], cwd=root)


def _ensure_dvc(root: Path) -> None:
    if (root / ".dvc").is_dir():
        return
    from dvc.repo import Repo

    Repo.init(str(root), no_scm=not (root / ".git").exists())


def configure_remote(root: Path, spec: RemoteSpec) -> None:
    """Make ``spec`` the default DVC remote of ``root`` (``dvc remote add -d -f`` and
    ``dvc remote modify --local`` through DVC's config API). The remote's entry is
    replaced as a whole, so options and secrets of an earlier ``cmf init`` do not linger."""
    from dvc.config import ConfigError

    cfg = _dvc_config(root)
    try:
        with cfg.edit("repo") as conf:
            conf.setdefault("remote", {})[spec.name] = {"url": spec.url, **spec.options}
            conf.setdefault("core", {})["remote"] = spec.name
        with cfg.edit("local") as conf:
            remotes = conf.setdefault("remote", {})
            if spec.secrets:
                remotes[spec.name] = dict(spec.secrets)
            else:
                remotes.pop(spec.name, None)
    except ConfigError as exc:
        # DVC's message quotes option names, never their values.
        raise UsageError(f"DVC refused remote {spec.name!r}: {str(exc).splitlines()[0]}") from None
    local = root / ".dvc" / "config.local"
    if local.exists():
        os.chmod(local, 0o600)


def init_project(
    root: Path,
    spec: Optional[RemoteSpec],
    *,
    git_remote_url: str = "",
    cmf_server_url: str = "",
    neo4j_uri: str = "",
    neo4j_user: str = "",
    neo4j_password: str = "",
) -> InitConfig:
    """Set up ``root``: git and DVC if missing, the default remote ``spec`` (if given),
    ``.cmfconfig`` and the private ``.cmfconfig.local``. Returns what is configured now."""
    neo4j = [neo4j_uri, neo4j_user, neo4j_password]
    if any(neo4j) and not all(neo4j):
        raise UsageError("Neo4j needs all three of --neo4j-uri, --neo4j-user and --neo4j-password")
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    _ensure_git(root, git_remote_url)
    _ensure_dvc(root)
    values: Dict[str, str] = {}
    if spec is not None:
        configure_remote(root, spec)
        values.update({"remote": spec.name, "remote_type": spec.type, **spec.settings})
    existing = config.read_file(root)
    if cmf_server_url or "cmf_server_url" not in existing:
        values["cmf_server_url"] = cmf_server_url or DEFAULT_SERVER_URL
    if all(neo4j):
        values.update({"neo4j_uri": neo4j_uri, "neo4j_user": neo4j_user})
        _write_private(root / LOCAL_CONFIG, {"neo4j_password": neo4j_password})
        _ensure_ignored(root, LOCAL_CONFIG)
    config.write_file(root, values)
    return read_init_config(root)


def configure(root: Path, type: str, *, git_remote_url: str = "", cmf_server_url: str = "", neo4j_uri: str = "",
              neo4j_user: str = "", neo4j_password: str = "", **remote_options: Any) -> InitConfig:
    """``cmf init TYPE ...`` in one call: :meth:`RemoteSpec.build` checks ``remote_options``
    (no remote when ``type`` is empty), then :func:`init_project` writes the settings."""
    spec = RemoteSpec.build(type, **remote_options) if type else None
    return init_project(root, spec, git_remote_url=git_remote_url, cmf_server_url=cmf_server_url,
                        neo4j_uri=neo4j_uri, neo4j_user=neo4j_user, neo4j_password=neo4j_password)


__all__ = [
    "configure",
    "REMOTE_NAMES",
    "SECRET_OPTIONS",
    "LOCAL_CONFIG",
    "DEFAULT_SERVER_URL",
    "RemoteSpec",
    "InitConfig",
    "read_init_config",
    "configure_remote",
    "init_project",
]
