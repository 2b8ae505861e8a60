from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "apps.staff"
    label = "staff"

    def ready(self) -> None:
        # The admin asks for the second factor too (a TOTP or recovery code on its log-in form).
        from django.contrib import admin
        from django_otp.admin import OTPAdminSite

        admin.site.__class__ = OTPAdminSite
