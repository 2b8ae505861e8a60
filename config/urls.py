from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from apps.core import api_errors, health
from apps.operations.metrics import metrics_view

handler400 = "apps.portal.errors.bad_request"  # the API's problem+json under /api/
handler404 = "apps.core.api_errors.api_or_html_404"
handler500 = "apps.portal.errors.server_error"  # the API's problem+json under /api/

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # bearer CER_METRICS_TOKEN; 404 without it
    path("readyz/full", health.readyz_full, name="readyz-full"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # A problem's `type` (https://cer.nfz.gov.pl/problems/<code>): the catalogue entry of its code.
    path("problems/<slug:code>", api_errors.problem_type, name="problem-type"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: no inline script, so the CSP can forbid them.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/", include("apps.integration.urls")),
    # Anything else under /api/ is a problem+json 404, also under DEBUG (whose 404 page is HTML).
    re_path(r"^api/", api_errors.api_not_found),
    path("staff/", include("apps.staff.urls")),
    path("fhir/", include("apps.fhir.urls")),
    path("opendata/", include("apps.opendata.urls")),
    path("", include("apps.portal.urls")),
]

if settings.OIDC_RP_CLIENT_ID:
    # mozilla-django-oidc reverses its own URL names without a namespace, so they live at the top level.
    urlpatterns.insert(0, path("oidc/", include("mozilla_django_oidc.urls")))
