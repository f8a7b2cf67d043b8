"""Where a job may run: the machine shapes it accepts, what the clouds sell, the ranked
candidates, and the cluster that provision made.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ResourceRequest(BaseModel):
    """One acceptable shape of machine, normalised from the task's `resources` (or one any_of
    entry). `None` means "any". Numbers with a trailing '+' in the YAML set the *_at_least flag."""

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    accelerators: dict[str, float] | None = None
    cpus: float | None = None
    cpus_at_least: bool = False
    memory_gb: float | None = None
    memory_at_least: bool = False
    use_spot: bool = True
    disk_size_gb: int | None = None
    image_id: str | None = None

    def describe(self) -> str:
        """A short human form such as '[T4:1, cpus=4+] spot' or '[any] spot in aws/us-east-1'
        (the plan prefixes the node count: '1x[any] spot'); the machine comes first so the
        count never runs into a cloud's name ('1xlocal')."""
        parts: list[str] = []
        if self.accelerators:
            parts.append(", ".join(f"{k}:{v:g}" for k, v in self.accelerators.items()))
        if self.instance_type:
            parts.append(self.instance_type)
        if self.cpus is not None:
            parts.append(f"cpus={self.cpus:g}{'+' if self.cpus_at_least else ''}")
        if self.memory_gb is not None:
            parts.append(f"mem={self.memory_gb:g}{'+' if self.memory_at_least else ''}")
        where = "/".join(p for p in (self.cloud, self.region, self.zone) if p)
        text = ", ".join(parts) if parts else "any"
        return f"[{text}]{' spot' if self.use_spot else ''}{' in ' + where if where else ''}"


class Offering(BaseModel):
    """One thing a cloud sells: an instance type in a zone, with its prices (USD/hour)."""

    cloud: str
    region: str
    zone: str
    instance_type: str
    cpus: float
    memory_gb: float
    accelerators: dict[str, int] = Field(default_factory=dict)
    spot_price: float | None = None
    ondemand_price: float | None = None
    max_nodes: int | None = None
    """The most instances of it the region can ever hold at once, where the cloud knows (the
    local cloud's `capacity`); a job asking for more would wait forever, so it is refused."""


class Candidate(BaseModel):
    """A placement to try, in order: where, what, and at which price."""

    cloud: str
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    price: float
    accelerators: dict[str, int] = Field(default_factory=dict)
    cpus: float = 0
    memory_gb: float = 0
    ondemand_price: float | None = None
    """The catalog's on-demand price of the same offering (what a spot job saves against)."""

    @property
    def location(self) -> str:
        return f"{self.cloud}/{self.region}/{self.zone}"


class Location(BaseModel):
    """Where instances live: a cloud's API calls are made per region (AWS, GCE), so every
    call about existing instances says where they are instead of scanning every region."""

    cloud: str
    region: str
    zone: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.cloud, self.region, self.zone) if p)


class ClusterHandle(BaseModel):
    """What provision made: enough to find, run on and terminate every node of the cluster."""

    cluster_name: str
    cloud: str
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    instance_ids: list[str]
    node_ips: list[str]
    price: float = 0.0
    accelerators: dict[str, int] = Field(default_factory=dict)
    """Accelerators per node (filled by the provision activity from the candidate)."""

    @property
    def location(self) -> Location:
        return Location(cloud=self.cloud, region=self.region, zone=self.zone)
