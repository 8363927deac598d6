"""Adaptive data rate (ADR): the network-side rate adaptation, the device-side ADR backoff and
the LinkADRReq / LinkADRAns MAC command exchange.

Network side (:func:`semtech_adr`, :func:`semtech_adr_array`): the Semtech algorithm ("LoRaWAN -
simple rate adaptation recommended algorithm", Semtech, rev. 1.0, 2016) as networks commonly run
it - see ns-3 lorawan ``AdrComponent::AdrImplementation`` (signetlabdei/lorawan
model/adr-component.cc) and ChirpStack's default ADR (forum.chirpstack.io "ADR algorithm and
configuration": margin - installation margin, divided by 3, steps up the data rate first, then
down the power; negative steps raise the power; the data rate is never lowered):

    SNRmax    = max SNR of the last ``history`` uplinks (default 20)
    SNRmargin = SNRmax - SNRreq(DR) - installation margin (default 10 dB)
    NStep     = floor(SNRmargin / 3)
    while NStep > 0 and DR < max ADR DR:  DR += 1, NStep -= 1
    while NStep > 0 and TXPower < max index (lowest power):  TXPower += 1 (-2 dB), NStep -= 1
    while NStep < 0 and TXPower > 0 (highest power):  TXPower -= 1 (+2 dB), NStep += 1

SNRreq is the demodulator floor of the DR's spreading factor, :func:`iotsim.radio.lora.snr_threshold_db`
(SX1276 datasheet table 13: SF7 -7.5 dB ... SF12 -20 dB, as ns-3's ``threshold`` array).
Differences from the references, stated: ns-3 keeps the installation margin commented out
(``// const int offset = 10``) and waits for ``HistoryRange`` packets (default 4, averaging by
default); The Things Stack (pkg/networkserver/mac/adr.go) uses 2.5 dB per DR step, a 15 dB
default margin and NbTrans adaptation. Here the history may be shorter than ``history`` (the
maximum over what there is) and an empty history leaves the node unchanged.

Device side (:class:`AdrBackoff`): LoRaWAN L2 1.0.4 (TS001-1.0.4) section 4.3.1.1 and its
table 9 "Example of a data rate backoff sequence": ADRACKCnt counts uplinks since the last
downlink; from ADR_ACK_LIMIT (64) on the uplink sets ADRACKReq; after ADR_ACK_LIMIT +
ADR_ACK_DELAY (96) the device goes back to its default (maximum) TX power, then lowers its data
rate by one every further ADR_ACK_DELAY (32) uplinks down to the default data rate; once there, at
the next step it resets NbTrans to 1 and re-enables the default channels. Any Class A downlink
resets ADRACKCnt. ADR_ACK_LIMIT = 64 and ADR_ACK_DELAY = 32 are the RP002-1.0.x default settings
(LoRaMac-node EU868_ADR_ACK_LIMIT 64, EU868_ADR_ACK_DELAY 32).

LinkADRReq / LinkADRAns (:func:`apply_link_adr_req`): LoRaWAN L2 1.0.4 section 5.3; the
acceptance rules as LoRaMac-node RegionCommonLinkAdrReqVerifyParams applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from iotsim.errors import InputError
from iotsim.radio import lora
from iotsim.radio.lorawan import Region

DEFAULT_INSTALLATION_MARGIN_DB = 10.0
"""Semtech recommended algorithm / ChirpStack default installation margin (dB)."""
DEFAULT_HISTORY = 20
"""Uplinks whose SNR the network keeps for ADR (Semtech algorithm; TTS OptimalADRUplinkCount 20)."""
ADR_STEP_DB = 3.0
"""dB of margin per ADR step (Semtech algorithm: NStep = floor(SNRmargin / 3))."""

ADR_ACK_LIMIT = 64
"""RP002-1.0.x default settings: ADR_ACK_LIMIT 64 (LoRaMac-node EU868_ADR_ACK_LIMIT)."""
ADR_ACK_DELAY = 32
"""RP002-1.0.x default settings: ADR_ACK_DELAY 32 (LoRaMac-node EU868_ADR_ACK_DELAY)."""

# MAC command sizes, LoRaWAN L2 1.0.4 section 5 table 4 (CID 1 byte + payload). LinkADRReq
# payload: DataRate_TXPower 1 + ChMask 2 + Redundancy 1 = 4 bytes (ns-3 LinkAdrReq::GetSerializedSize
# returns 5 with the CID); LinkADRAns payload: Status 1 byte.
MAC_CID_BYTES = 1
LINK_ADR_REQ_PAYLOAD_BYTES = 4
LINK_ADR_REQ_BYTES = MAC_CID_BYTES + LINK_ADR_REQ_PAYLOAD_BYTES
LINK_ADR_ANS_PAYLOAD_BYTES = 1
LINK_ADR_ANS_BYTES = MAC_CID_BYTES + LINK_ADR_ANS_PAYLOAD_BYTES
LINK_ADR_REQ_CID = 0x03
"""CID of LinkADRReq / LinkADRAns (LoRaWAN L2 1.0.4 table 4)."""

KEEP_CURRENT = 0xF
"""LinkADRReq DataRate or TXPower field value 15: keep the current setting (LoRaWAN L2 1.0.4 5.3)."""
NB_TRANS_DEFAULT = 1
NB_TRANS_MAX = 15


# ---- network side -------------------------------------------------------------------------


def _required_snr_db(region: Region, data_rate) -> np.ndarray:
    dr = np.asarray(data_rate, dtype=np.int64)
    sf = np.zeros(dr.shape, dtype=np.int64)
    for d in np.unique(dr):
        sf[dr == d] = region.data_rate_to_sf(int(d))
    return np.asarray(lora.snr_threshold_db(sf), dtype=float)


def semtech_adr_array(max_snr_db, data_rate, tx_power_index, region: Region,
                      margin_db: float = DEFAULT_INSTALLATION_MARGIN_DB, max_data_rate: int | None = None):
    """Vectorized Semtech ADR step: ``(new_data_rate, new_tx_power_index)`` int64 arrays.

    ``max_snr_db``: each node's SNRmax over its recent uplinks (NaN: no history, unchanged);
    ``data_rate``, ``tx_power_index``: the node's current settings. ``max_data_rate`` defaults to
    ``region.adr_max_data_rate`` (EU868 DR5, US915 DR3). The data rate is never lowered.
    """
    snr = np.asarray(max_snr_db, dtype=float)
    dr = np.asarray(data_rate, dtype=np.int64)
    txp = np.asarray(tx_power_index, dtype=np.int64)
    snr, dr, txp = np.broadcast_arrays(snr, dr, txp)
    top = region.adr_max_data_rate if max_data_rate is None else int(max_data_rate)
    if np.any((txp < 0) | (txp > region.max_tx_power_index)):
        raise InputError(f"{region.name} TXPower index must be 0..{region.max_tx_power_index}", field="tx_power_index")
    have = np.isfinite(snr)
    margin = np.where(have, snr, 0.0) - _required_snr_db(region, dr) - float(margin_db)
    steps = np.floor(margin / ADR_STEP_DB).astype(np.int64)
    steps = np.where(have, steps, 0)
    up = np.clip(np.minimum(steps, top - dr), 0, None)  # DR steps actually taken
    new_dr = dr + up
    left = steps - up
    new_txp = np.where(left > 0, np.minimum(txp + left, region.max_tx_power_index), txp)
    new_txp = np.where(left < 0, np.maximum(txp + left, 0), new_txp)
    return new_dr.astype(np.int64), new_txp.astype(np.int64)


def semtech_adr(snr_history_db, data_rate: int, tx_power_index: int, region: Region,
                margin_db: float = DEFAULT_INSTALLATION_MARGIN_DB, history: int = DEFAULT_HISTORY,
                max_data_rate: int | None = None) -> tuple[int, int]:
    """Semtech ADR for one node: ``(data_rate, tx_power_index)`` after the network's decision.

    ``snr_history_db``: SNRs (dB) of the node's uplinks, oldest first; the last ``history`` count.
    See the module docstring for the algorithm and its sources.
    """
    if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
        raise InputError(f"history must be a whole number >= 1, got {history!r}", field="history")
    snrs = np.asarray(snr_history_db, dtype=float).ravel()[-int(history):]
    snr_max = float(snrs.max()) if snrs.size else math.nan
    new_dr, new_txp = semtech_adr_array(snr_max, int(data_rate), int(tx_power_index), region, margin_db, max_data_rate)
    return int(new_dr), int(new_txp)


# ---- device side: ADR backoff ------------------------------------------------------------


@dataclass(frozen=True)
class UplinkSettings:
    """What the device uses for one uplink, decided by :meth:`AdrBackoff.next_uplink`."""

    data_rate: int
    tx_power_index: int
    nb_trans: int
    adr_ack_req: bool
    adr_ack_cnt: int
    """ADRACKCnt when this uplink was built (0 for the first uplink after a downlink)."""
    default_channels_restored: bool


class AdrBackoff:
    """Device-side ADR backoff (LoRaWAN L2 1.0.4 section 4.3.1.1, table 9), pure Python.

    Call :meth:`next_uplink` once per new uplink (not per repetition: NbTrans repetitions do
    not increment the frame counter) and :meth:`on_downlink` whenever a Class A downlink arrives.
    """

    def __init__(self, region: Region, data_rate: int, tx_power_index: int = 0, nb_trans: int = NB_TRANS_DEFAULT,
                 *, adr_ack_limit: int = ADR_ACK_LIMIT, adr_ack_delay: int = ADR_ACK_DELAY,
                 default_data_rate: int | None = None, default_tx_power_index: int = 0):
        if adr_ack_limit < 1 or adr_ack_delay < 1:
            raise InputError("ADR_ACK_LIMIT and ADR_ACK_DELAY must be >= 1", field="adr_ack_limit")
        self.region = region
        self.data_rate = int(data_rate)
        self.tx_power_index = int(tx_power_index)
        self.nb_trans = int(nb_trans)
        self.adr_ack_limit = int(adr_ack_limit)
        self.adr_ack_delay = int(adr_ack_delay)
        self.default_data_rate = region.default_data_rate if default_data_rate is None else int(default_data_rate)
        self.default_tx_power_index = int(default_tx_power_index)
        self.adr_ack_cnt = 0
        self.default_channels_restored = False

    def next_uplink(self) -> UplinkSettings:
        """Settings of the next uplink; applies the backoff step due at this ADRACKCnt, then counts it."""
        c = self.adr_ack_cnt
        over = c - self.adr_ack_limit
        if over >= self.adr_ack_delay and over % self.adr_ack_delay == 0:
            self._backoff_step(over // self.adr_ack_delay)
        settings = UplinkSettings(self.data_rate, self.tx_power_index, self.nb_trans,
                                  adr_ack_req=c >= self.adr_ack_limit, adr_ack_cnt=c,
                                  default_channels_restored=self.default_channels_restored)
        self.adr_ack_cnt = c + 1
        return settings

    def _backoff_step(self, k: int) -> None:
        if k == 1:  # first: back to the default (maximum) TX power
            self.tx_power_index = self.default_tx_power_index
        elif self.data_rate > self.default_data_rate:  # then one DR lower every ADR_ACK_DELAY uplinks
            self.data_rate -= 1
        else:  # at the default DR: NbTrans back to 1, default channels re-enabled
            self.nb_trans = NB_TRANS_DEFAULT
            self.default_channels_restored = True

    def on_downlink(self) -> None:
        """Any Class A downlink resets ADRACKCnt (LoRaWAN L2 1.0.4 section 4.3.1.1)."""
        self.adr_ack_cnt = 0


# ---- LinkADRReq / LinkADRAns ----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRadioState:
    """The ADR-controlled settings of a device."""

    data_rate: int
    tx_power_index: int
    nb_trans: int = NB_TRANS_DEFAULT
    channel_mask: frozenset[int] = frozenset()
    """Enabled uplink channel indices (into ``Region.all_uplink_channels_hz``)."""


@dataclass(frozen=True)
class LinkAdrAns:
    """LinkADRAns status (LoRaWAN L2 1.0.4 section 5.3): bit 2 power, bit 1 DR, bit 0 channel mask."""

    power_ack: bool
    data_rate_ack: bool
    channel_mask_ack: bool

    @property
    def status_byte(self) -> int:
        return (int(self.power_ack) << 2) | (int(self.data_rate_ack) << 1) | int(self.channel_mask_ack)

    @property
    def accepted(self) -> bool:
        return self.power_ack and self.data_rate_ack and self.channel_mask_ack


def apply_link_adr_req(state: DeviceRadioState, region: Region, data_rate: int, tx_power_index: int,
                       nb_trans: int, channel_mask=None, *, max_device_data_rate: int | None = None
                       ) -> tuple[DeviceRadioState, LinkAdrAns]:
    """Apply a LinkADRReq to ``state``; returns the new state and the LinkADRAns status.

    - DataRate / TXPower 15 (:data:`KEEP_CURRENT`) keep the current value (LoRaWAN 1.0.4).
    - DataRate is acknowledged when it is an uplink DR of the region (and <= the device's
      ``max_device_data_rate`` when given) and some enabled channel allows it (not modelled:
      every region channel allows every uplink DR of its bandwidth).
    - TXPower is acknowledged when 0 <= index <= the region's maximum index; an index the
      radio cannot reach is applied as the nearest power it can, as LoRaMac-node does.
    - ChMask is acknowledged when it is non-empty and every index is a region channel.
    - NbTrans 0 means the default, 1 (LoRaMac-node RegionCommonLinkAdrReqVerifyParams:
      "Restore the default value according to the LoRaWAN specification"; some versions keep
      the current value instead); values above 15 are refused as a malformed command.
    - All or nothing: if any bit is 0 the device applies nothing (LoRaWAN L2 1.0.4 5.3).
    """
    dr = state.data_rate if int(data_rate) == KEEP_CURRENT else int(data_rate)
    txp = state.tx_power_index if int(tx_power_index) == KEEP_CURRENT else int(tx_power_index)
    top = max(region.uplink_data_rates) if max_device_data_rate is None else int(max_device_data_rate)
    dr_ok = dr in region.uplink_data_rates and dr <= top
    pw_ok = 0 <= txp <= region.max_tx_power_index
    n_channels = len(region.all_uplink_channels_hz or region.uplink_channels_hz)
    if channel_mask is None:
        mask = state.channel_mask
        ch_ok = True
    else:
        mask = frozenset(int(c) for c in channel_mask)
        ch_ok = bool(mask) and all(0 <= c < n_channels for c in mask)
    nb = int(nb_trans)
    if not 0 <= nb <= NB_TRANS_MAX:
        raise InputError(f"NbTrans must be 0..{NB_TRANS_MAX}, got {nb}", field="nb_trans")
    ans = LinkAdrAns(power_ack=pw_ok, data_rate_ack=dr_ok, channel_mask_ack=ch_ok)
    if not ans.accepted:
        return state, ans
    new = replace(state, data_rate=dr, tx_power_index=txp, nb_trans=nb or NB_TRANS_DEFAULT, channel_mask=mask)
    return new, ans
