from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "apps.integration"
    label = "integration"

    def ready(self) -> None:
        from django.db.models.signals import post_delete
        from oauth2_provider.models import AccessToken

        from .auth import principal_forget_deleted_token

        post_delete.connect(
            principal_forget_deleted_token, sender=AccessToken, dispatch_uid="principal-forget"
        )
