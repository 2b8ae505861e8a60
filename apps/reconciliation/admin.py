"""Admin: the settlement policy (the settlement window and the emergency-share threshold are data)."""

from __future__ import annotations

from django.contrib import admin

from .models import SettlementPolicy


@admin.register(SettlementPolicy)
class SettlementPolicyAdmin(admin.ModelAdmin):
    list_display = ("settlement_window_days", "emergency_share_threshold", "updated_at")
